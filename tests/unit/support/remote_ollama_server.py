"""A small service speaking Ollama's API, for `remote::ollama`'s tests: `/api/tags`,
`/api/chat`, `/api/generate`, `/api/embed`, `/api/version`, streaming JSON lines, and
Ollama's OpenAI-compatible API under `/v1`. The model behind it is the echo model of
`remote_servers`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.unit.support.remote_servers import (
    Answer,
    FakeService,
    answer,
    embed,
    openai_router,
    pieces,
)

OLLAMA_MODELS = ["llama3.2:latest", "all-minilm:latest"]


def json_lines(lines: list[Any]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for line in lines:
            yield (json.dumps(line) + "\n").encode()
            await asyncio.sleep(0)

    return StreamingResponse(body(), media_type="application/x-ndjson")


def ollama_app(svc: FakeService) -> FastAPI:
    app = FastAPI()
    app.include_router(openai_router(svc), prefix="/v1")

    def unknown_model(body: dict[str, Any]) -> Response | None:
        name = body.get("model", "")
        if name in svc.models or f"{name}:latest" in svc.models:
            return None
        return JSONResponse({"error": f'model "{name}" not found, try pulling it first'}, 404)

    def counts(a: Answer) -> dict[str, Any]:
        return {
            "done": True,
            "done_reason": a.finish_reason if a.finish_reason != "tool_calls" else "stop",
            "prompt_eval_count": a.prompt_tokens,
            "eval_count": len(a.words),
        }

    @app.get("/api/version")
    async def version(request: Request) -> Response:
        _, _, early = await svc.intake(request)
        return early or JSONResponse({"version": "0.9.0"})

    @app.get("/api/tags")
    async def tags(request: Request) -> Response:
        _, _, early = await svc.intake(request)
        if early is not None:
            return early
        models = [
            {
                "name": m,
                "model": m,
                "size": 1,
                "digest": "0",
                "details": {"family": "llama", "format": "gguf"},
            }
            for m in svc.models
        ]
        return JSONResponse({"models": models})

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body, failure, early = await svc.intake(request)
        if early is not None or (early := unknown_model(body)) is not None:
            return early
        messages = body["messages"]
        options = body.get("options") or {}
        user = [m for m in messages if m["role"] == "user"]
        a = answer(
            user[-1]["content"] if user else "",
            prompt_tokens=sum(len(m.get("content", "").split()) for m in messages),
            max_tokens=options.get("num_predict"),
            stop=options.get("stop"),
            tools=body.get("tools"),
            json_output="format" in body,
        )
        calls = [
            {"function": {"name": c["name"], "arguments": c["arguments"]}} for c in a.tool_calls
        ]
        base = {"model": body["model"], "created_at": "2025-06-01T00:00:00Z"}
        if not body.get("stream", True):
            message: dict[str, Any] = {"role": "assistant", "content": a.text}
            if calls:
                message["tool_calls"] = calls
            return JSONResponse({**base, "message": message, **counts(a)})
        lines: list[Any] = [
            {**base, "message": {"role": "assistant", "content": piece}, "done": False}
            for piece in pieces(a.words)
        ]
        for call in calls:
            lines.append(
                {
                    **base,
                    "message": {"role": "assistant", "content": "", "tool_calls": [call]},
                    "done": False,
                }
            )
        lines.append({**base, "message": {"role": "assistant", "content": ""}, **counts(a)})
        if failure:
            lines = [*lines[:2], {"error": "the runner died"}]
        return json_lines(lines)

    @app.post("/api/generate")
    async def generate(request: Request) -> Response:
        body, _, early = await svc.intake(request)
        if early is not None or (early := unknown_model(body)) is not None:
            return early
        options = body.get("options") or {}
        a = answer(
            body["prompt"],
            prompt_tokens=len(body["prompt"].split()),
            max_tokens=options.get("num_predict"),
            stop=options.get("stop"),
        )
        base = {"model": body["model"], "created_at": "2025-06-01T00:00:00Z"}
        if not body.get("stream", True):
            return JSONResponse({**base, "response": a.text, **counts(a)})
        lines: list[Any] = [{**base, "response": piece, "done": False} for piece in pieces(a.words)]
        lines.append({**base, "response": "", **counts(a)})
        return json_lines(lines)

    @app.post("/api/embed")
    async def embed_route(request: Request) -> Response:
        body, _, early = await svc.intake(request)
        if early is not None or (early := unknown_model(body)) is not None:
            return early
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [embed(t, body.get("dimensions")) for t in texts],
                "prompt_eval_count": sum(len(t.split()) for t in texts),
            }
        )

    return app
