"""A guard model on 127.0.0.1 whose answers the test sets: OpenAI's `/v1/models`,
`/v1/chat/completions` and `/v1/completions`, answering each request with the next text
of `svc.answers` ("safe" when none is queued). Every request is recorded (`svc.requests`)."""

from __future__ import annotations

from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.unit.support.remote_servers import FakeService

GUARD_MODEL = "guard-model"


def guard_app(svc: FakeService) -> FastAPI:
    app = FastAPI()
    svc.answers = deque()  # type: ignore[attr-defined]

    def next_answer() -> str:
        queued: deque[str] = svc.answers  # type: ignore[attr-defined]
        return queued.popleft() if queued else "safe"

    def usage(text: str) -> dict[str, int]:
        return {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10}

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        await svc.intake(request)
        data = [{"id": GUARD_MODEL, "object": "model", "created": 1, "owned_by": "test"}]
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body: Any
        body, _, early = await svc.intake(request)
        if early is not None:
            return early
        text = next_answer()
        return JSONResponse(
            {
                "id": "chatcmpl-guard",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": usage(text),
            }
        )

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body: Any
        body, _, early = await svc.intake(request)
        if early is not None:
            return early
        text = next_answer()
        return JSONResponse(
            {
                "id": "cmpl-guard",
                "object": "text_completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": usage(text),
            }
        )

    return app
