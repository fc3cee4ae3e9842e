"""`inline::scripted-local`: a deterministic model that runs in its own deployment.

The external echo provider answers in the caller's process (a remote kind); this one is
declared to run in a model deployment, as the local transformers model does, so a test
of the composition graph sees the hops a local model costs. When the request offers
tools and the last message is the user's, it calls the first tool with the user's text
as ``query``; otherwise it echoes, like `remote::echo`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from stackray_echo import EchoInferenceProvider, _text

from stackray.api.common import ToolCall
from stackray.api.datatypes import Api
from stackray.api.inference import (
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    TextDelta,
    ToolCallDelta,
    ToolCallParseStatus,
)
from stackray.providers.spec import MODEL, ProviderSpec


def get_provider_spec() -> ProviderSpec:
    return ProviderSpec(
        api=Api.inference,
        provider_type="inline::scripted-local",
        impl="tests.unit.support.scripted_local_model:ScriptedLocalModel",
        config_class="stackray_echo:EchoConfig",
        description="Calls the first tool offered, else echoes; runs in its own deployment.",
        deployment=MODEL,
    )


def _role(message: Any) -> str | None:
    return message.get("role") if isinstance(message, dict) else getattr(message, "role", None)


class ScriptedLocalModel(EchoInferenceProvider):
    async def chat_completion_stream(self, request: Any) -> AsyncIterator[Any]:
        tools = getattr(request, "tools", None) or []
        if not tools or _role(request.messages[-1]) != "user":
            async for chunk in super().chat_completion_stream(request):
                yield chunk
            return
        name = tools[0].tool_name
        call = ToolCall(
            call_id=uuid.uuid4().hex,
            tool_name=name.value if hasattr(name, "value") else name,
            arguments={"query": _text(request.messages[-1].content)},
        )
        for event in (
            ChatCompletionResponseEvent(event_type="start", delta=TextDelta(text="")),
            ChatCompletionResponseEvent(
                event_type="progress",
                delta=ToolCallDelta(tool_call=call, parse_status=ToolCallParseStatus.succeeded),
            ),
            ChatCompletionResponseEvent(
                event_type="complete", delta=TextDelta(text=""), stop_reason="end_of_message"
            ),
        ):
            yield ChatCompletionResponseStreamChunk(event=event)
