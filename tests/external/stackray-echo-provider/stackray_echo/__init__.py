"""`remote::echo`: an inference provider that lives in its own package.

It answers instantly and deterministically (the reply is the last user message, prefixed
with ``echo: ``; embeddings are derived from a hash), which makes it the zero-latency
backend of the gateway benchmark and the proof that external providers plug in.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stackray.api.datatypes import Api
from stackray.providers.registry import ProviderSpec
from stackray.runtime.request_context import current_provider_data

# A user message with exactly this text makes the provider raise (to test error mapping).
FAIL = "__fail__"


def get_provider_spec() -> ProviderSpec:
    return ProviderSpec(
        api=Api.inference,
        provider_type="remote::echo",
        impl="stackray_echo:EchoInferenceProvider",
        config_class="stackray_echo:EchoConfig",
        description="Echoes the last user message; zero latency.",
    )


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(default="echo: ", description="Put before every reply.")
    dimension: int = Field(default=8, ge=1, description="Dimension of the embeddings.")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(c) for c in content)
    return str(getattr(content, "text", "") or "")


class EchoInferenceProvider:
    def __init__(self, config: EchoConfig, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.provider_id = context.provider_id

    async def register_model(self, model: Any) -> Any:
        return model

    async def unregister_model(self, provider_model_id: str) -> None:
        return None

    def _reply(self, messages: list[Any]) -> str:
        for m in reversed(messages):
            role = m.get("role") if isinstance(m, dict) else getattr(m, "role", None)
            if role == "user":
                content = m.get("content") if isinstance(m, dict) else m.content
                text = _text(content)
                if text == FAIL:
                    raise RuntimeError("failure requested")
                return self._prefix() + text
        return self._prefix()

    def _prefix(self) -> str:
        # Per-request override through the X-LlamaStack-Provider-Data header.
        data = current_provider_data() or {}
        return str(data.get("echo_prefix", self.config.prefix))

    async def chat_completion(self, request: Any) -> Any:
        from stackray.api.common import CompletionMessage
        from stackray.api.inference import ChatCompletionResponse

        return ChatCompletionResponse(
            completion_message=CompletionMessage(
                role="assistant",
                content=self._reply(request.messages),
                stop_reason="end_of_turn",
                tool_calls=[],
            )
        )

    async def chat_completion_stream(self, request: Any) -> AsyncIterator[Any]:
        from stackray.api.inference import (
            ChatCompletionResponseEvent,
            ChatCompletionResponseStreamChunk,
            TextDelta,
        )

        yield ChatCompletionResponseStreamChunk(
            event=ChatCompletionResponseEvent(event_type="start", delta=TextDelta(text=""))
        )
        for word in self._reply(request.messages).split(" "):
            yield ChatCompletionResponseStreamChunk(
                event=ChatCompletionResponseEvent(
                    event_type="progress", delta=TextDelta(text=word + " ")
                )
            )
        yield ChatCompletionResponseStreamChunk(
            event=ChatCompletionResponseEvent(
                event_type="complete", delta=TextDelta(text=""), stop_reason="end_of_turn"
            )
        )

    async def completion(self, request: Any) -> Any:
        from stackray.api.inference import CompletionResponse

        return CompletionResponse(
            content=self.config.prefix + _text(request.content), stop_reason="end_of_turn"
        )

    async def completion_stream(self, request: Any) -> AsyncIterator[Any]:
        from stackray.api.inference import CompletionResponseStreamChunk

        yield CompletionResponseStreamChunk(delta=self.config.prefix + _text(request.content))
        yield CompletionResponseStreamChunk(delta="", stop_reason="end_of_turn")

    def _vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [b / 255.0 for b in digest[: self.config.dimension]]

    async def embeddings(self, request: Any) -> Any:
        from stackray.api.inference import EmbeddingsResponse

        return EmbeddingsResponse(embeddings=[self._vector(_text(c)) for c in request.contents])

    async def openai_chat_completion(self, request: Any) -> Any:
        from stackray.api.inference import OpenAIChatCompletion

        return OpenAIChatCompletion.model_validate(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": self._reply(request.messages)},
                    }
                ],
            }
        )

    async def openai_chat_completion_stream(self, request: Any) -> AsyncIterator[Any]:
        from stackray.api.inference import OpenAIChatCompletionChunk

        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        words = self._reply(request.messages).split(" ")
        for i, word in enumerate(words):
            yield OpenAIChatCompletionChunk.model_validate(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": request.model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "role": "assistant",
                                "content": word + (" " if i < len(words) - 1 else ""),
                            },
                            "finish_reason": "stop" if i == len(words) - 1 else None,
                        }
                    ],
                }
            )
