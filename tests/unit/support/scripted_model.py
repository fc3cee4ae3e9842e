"""A scripted tool-calling model behind OpenAI's chat completions API, on 127.0.0.1.

Agent tests need a model whose tool calls they control. `ScriptedModel` is a real HTTP
service (the `FakeService` runner of `remote_servers`) that `remote::vllm` talks to; each
chat completion (streamed or not) answers with the next `Reply` of `script`, or, once the
script is used up, deterministically: after a tool result "tool said: <result>", else
"echo: <last user text>". A script item may be a function of the request body. Words
count as tokens: `max_tokens` cuts the answer (`finish_reason: length`), and `usage`
counts them.

Every request is recorded (`requests`), so tests see what the agent sent: messages,
tools, tool_choice, response_format, sampling parameters.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.unit.support.remote_servers import FakeService, pieces, sse, text_of

SCRIPTED_MODELS = ["scripted", "scripted-embed"]


@dataclass
class Reply:
    """What the model answers: text, or tool calls (name, arguments)."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


ScriptItem = Reply | Callable[[dict[str, Any]], Reply]


def default_reply(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(f"tool said: {text_of(last.get('content'))}")
    user = [m for m in body["messages"] if m["role"] == "user"]
    return Reply(f"echo: {text_of(user[-1]['content']) if user else ''}")


class ScriptedModel(FakeService):
    def __init__(self) -> None:
        self.script: deque[ScriptItem] = deque()
        self.calls = 0
        super().__init__(scripted_app)
        self.models = list(SCRIPTED_MODELS)

    def reset(self, models: list[str] | None = None) -> ScriptedModel:
        super().reset(models or SCRIPTED_MODELS)
        self.script.clear()
        return self

    def play(self, *items: ScriptItem) -> None:
        self.script.extend(items)

    @property
    def chats(self) -> list[dict[str, Any]]:
        """The bodies of the chat completion requests, oldest first."""
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]


def scripted_app(svc: FakeService) -> FastAPI:
    assert isinstance(svc, ScriptedModel)
    app = FastAPI()

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        await svc.intake(request)
        data = [{"id": m, "object": "model", "created": 1, "owned_by": "test"} for m in svc.models]
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body, _, early = await svc.intake(request)
        if early is not None:
            return early
        svc.calls += 1
        item = svc.script.popleft() if svc.script else default_reply
        reply = item(body) if callable(item) else item
        calls = [
            {
                "id": f"call_{svc.calls}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for i, (name, arguments) in enumerate(reply.tool_calls)
        ]
        finish = "tool_calls" if calls else "stop"
        words = reply.text.split(" ") if reply.text else []
        # A word is a token here; like an OpenAI server, stop at the token limit asked for.
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is not None and len(words) + len(calls) > limit:
            words, calls, finish = words[:limit], [], "length"
        usage = {
            "prompt_tokens": sum(len(text_of(m.get("content")).split()) for m in body["messages"]),
            "completion_tokens": len(words) + len(calls),
            "total_tokens": 0,
        }
        base = {"id": f"chatcmpl-{svc.calls}", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return JSONResponse(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {**base, "object": "chat.completion.chunk", "choices": [choice]}

        events: list[Any] = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in pieces(words)]
        for i, call in enumerate(calls):
            name = call["function"]["name"]
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 5):
                piece = {"index": i, "function": {"arguments": arguments[start : start + 5]}}
                events.append(chunk({"tool_calls": [piece]}))
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        return sse(events)

    return app
