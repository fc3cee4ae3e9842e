"""Anthropic's Messages API on 127.0.0.1, for `remote::anthropic`.

- `POST /v1/messages` (whole, or `stream: true` as server-sent events: message_start,
  content_block_start / content_block_delta / content_block_stop per block, message_delta
  with the stop reason and output tokens, message_stop; a ping in between) and
  `GET /v1/models`.
- Requests need `x-api-key` (`svc.required_key`, default "sk-ant-test") and
  `anthropic-version`; a body is validated as Anthropic does (400 `invalid_request_error`):
  `max_tokens` required, turns alternating and starting with the user, every
  `tool_result` answering a `tool_use` of the turn before.
- The model echoes the last user text ("echo: <text>", one token per word); given tools
  (and a tool choice other than none) it calls the chosen one (every one when the text
  says "both") with the text as its first parameter. After a `tool_result` it answers
  "result: <the result>".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.unit.support.remote_servers import FakeService, answer, pieces

MODELS = ["claude-3-5-sonnet-latest", "claude-3-5-haiku-latest"]
KEY = "sk-ant-test"


def _invalid(message: str, status: int = 400, kind: str = "invalid_request_error") -> Response:
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status)


def _validate(body: Any) -> Response | None:
    if not isinstance(body, dict) or "max_tokens" not in body:
        return _invalid("max_tokens: Field required")
    messages = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return _invalid('messages: first message must use the "user" role')
    for prev, cur in zip(messages, messages[1:], strict=False):
        if prev["role"] == cur["role"]:
            return _invalid('messages: roles must alternate between "user" and "assistant"')
    for i, message in enumerate(messages):
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result":
                before = messages[i - 1]["content"] if i else []
                ids = {
                    b.get("id")
                    for b in before
                    if isinstance(b, dict) and b.get("type") == "tool_use"
                }
                if block.get("tool_use_id") not in ids:
                    return _invalid(
                        f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks"
                    )
    return None


def _reply(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, int]:
    """The content blocks, stop reason and output tokens of the echo model."""
    last = body["messages"][-1]
    content = (
        last["content"]
        if isinstance(last["content"], list)
        else [{"type": "text", "text": last["content"]}]
    )
    results = [b for b in content if b.get("type") == "tool_result"]
    if results:
        text = f"result: {results[0]['content']}"
        return [{"type": "text", "text": text}], "end_turn", len(text.split())
    prompt = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    tools = [
        {"function": {"name": t["name"], "parameters": t.get("input_schema")}}
        for t in body.get("tools") or []
    ]
    choice = body.get("tool_choice") or {}
    openai_choice: Any = None
    if choice.get("type") == "none":
        openai_choice = "none"
    elif choice.get("type") == "tool":
        openai_choice = {"function": {"name": choice["name"]}}
    result = answer(
        prompt,
        prompt_tokens=len(prompt.split()),
        max_tokens=body["max_tokens"],
        stop=body.get("stop_sequences"),
        tools=tools or None,
        tool_choice=openai_choice,
    )
    if result.tool_calls:
        blocks = [
            {"type": "tool_use", "id": f"toolu_{i}", "name": c["name"], "input": c["arguments"]}
            for i, c in enumerate(result.tool_calls)
        ]
        return blocks, "tool_use", 5
    reason = "max_tokens" if result.finish_reason == "length" else "end_turn"
    stopped = any(s in f"echo: {prompt}" for s in body.get("stop_sequences") or [])
    if stopped and reason == "end_turn":
        reason = "stop_sequence"
    return [{"type": "text", "text": result.text}], reason, len(result.words)


def anthropic_app(svc: FakeService) -> FastAPI:
    app = FastAPI()
    svc.required_key = KEY

    async def checked(request: Request) -> tuple[Any, Response | None]:
        body, _, early = await svc.intake(request)
        if early is not None and early.status_code != 401:
            return body, early
        if request.headers.get("x-api-key") != svc.required_key:
            return body, _invalid("invalid x-api-key", 401, "authentication_error")
        if not request.headers.get("anthropic-version"):
            return body, _invalid("anthropic-version: header is required")
        return body, None

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        _, bad = await checked(request)
        if bad is not None:
            return bad
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2024-10-22T00:00:00Z"}
            for m in MODELS
        ]
        return JSONResponse(
            {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
        )

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        body, bad = await checked(request)
        if bad is not None:
            return bad
        invalid = _validate(body)
        if invalid is not None:
            return invalid
        if body["model"] not in MODELS:
            return _invalid(f"model: {body['model']}", 404, "not_found_error")
        blocks, reason, output_tokens = _reply(body)
        usage = {"input_tokens": 12, "output_tokens": output_tokens}
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": blocks,
                    "stop_reason": reason,
                    "stop_sequence": None,
                    "usage": usage,
                }
            )
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_02",
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "stop_reason": None,
                        "usage": {"input_tokens": 12, "output_tokens": 1},
                    },
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": p} for p in pieces(block["text"].split(" "))
                ]
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                raw = json.dumps(block["input"])
                deltas = [
                    {"type": "input_json_delta", "partial_json": raw[i : i + 7]}
                    for i in range(0, len(raw), 7)
                ]
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            for delta in deltas:
                events.append(
                    (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))

        async def stream() -> AsyncIterator[bytes]:
            for name, data in events:
                yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app
