"""IBM watsonx.ai's HTTP API and IBM Cloud IAM's token endpoint on 127.0.0.1, for
`remote::watsonx`.

- `POST /identity/token` (form `grant_type=urn:ibm:params:oauth:grant-type:apikey`,
  `apikey`): a bearer token (`access_token`, `expires_in`); `issued` counts them.
- Every `/ml/v1/...` request needs a token IAM issued and a `version` query parameter;
  generation and chat need `model_id` and `project_id`.
- `/ml/v1/text/chat` and `/chat_stream`: OpenAI-shaped messages and answers, with
  `model_id`; `/ml/v1/text/generation` and `/generation_stream`: `{input, parameters}`
  answered `{results: [{generated_text, generated_token_count, input_token_count,
  stop_reason}]}` (stream events carry the next piece, `stop_reason: not_finished` until
  the last); `/ml/v1/text/embeddings`; `GET /ml/v1/foundation_model_specs`.

The model echoes as in `remote_servers`: "echo: <text>", one token per word.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.unit.support.remote_servers import (
    FakeService,
    Recorded,
    answer,
    embed,
    pieces,
    text_of,
)

CHAT_MODEL = "ibm/granite-3-8b-instruct"
EMBEDDING_MODEL = "ibm/slate-30m-english-rtrvr"
API_KEY = "ibm-cloud-key"


class WatsonX:
    """The state of the stand-in: tokens issued, the key IAM accepts."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.api_key = API_KEY

    @property
    def issued(self) -> int:
        return len(self.tokens)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        {"errors": [{"code": code, "message": message}], "trace": "t", "status_code": status},
        status,
    )


def watsonx_app(svc: FakeService, state: WatsonX) -> FastAPI:
    app = FastAPI()

    @app.post("/identity/token")
    async def token(request: Request) -> Response:
        raw = (await request.body()).decode()
        svc.requests.append(Recorded(request.method, request.url.path, dict(request.headers), raw))
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        if form.get("grant_type") != "urn:ibm:params:oauth:grant-type:apikey":
            return JSONResponse({"errorCode": "BXNIM0415E", "errorMessage": "bad grant"}, 400)
        if form.get("apikey") != state.api_key:
            return JSONResponse(
                {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."},
                400,
            )
        state.tokens.append(f"iam-token-{len(state.tokens) + 1}")
        now = int(time.time())
        return JSONResponse(
            {
                "access_token": state.tokens[-1],
                "refresh_token": "not_supported",
                "token_type": "Bearer",
                "expires_in": 3600,
                "expiration": now + 3600,
            }
        )

    async def checked(request: Request, scoped: bool = True) -> tuple[Any, Response | None]:
        body, _, early = await svc.intake(request)
        if early is not None:
            return body, early
        if "version" not in request.query_params:
            return body, _error(400, "invalid_request_entity", "Missing query parameter `version`")
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in state.tokens:
            return body, _error(401, "authentication_token_not_valid", "Failed to authenticate")
        if scoped and not (isinstance(body, dict) and body.get("project_id")):
            return body, _error(400, "json_validation_error", "project_id or space_id is required")
        return body, None

    @app.get("/ml/v1/foundation_model_specs")
    async def specs(request: Request) -> Response:
        _, _, early = await svc.intake(request)
        if early is not None:
            return early
        return JSONResponse(
            {
                "total_count": 2,
                "resources": [
                    {
                        "model_id": CHAT_MODEL,
                        "functions": [{"id": "text_generation"}, {"id": "text_chat"}],
                    },
                    {"model_id": EMBEDDING_MODEL, "functions": [{"id": "embedding"}]},
                ],
            }
        )

    def chat_answer(body: dict[str, Any]) -> Any:
        user = [m for m in body["messages"] if m["role"] == "user"]
        prompt = text_of(user[-1]["content"]) if user else ""
        return answer(
            prompt,
            prompt_tokens=len(prompt.split()),
            max_tokens=body.get("max_tokens"),
            stop=body.get("stop"),
        )

    @app.post("/ml/v1/text/chat")
    async def chat(request: Request) -> Response:
        body, bad = await checked(request)
        if bad is not None:
            return bad
        result = chat_answer(body)
        return JSONResponse(
            {
                "id": "chat-1",
                "model_id": body["model_id"],
                "created": int(time.time()),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result.text},
                        "finish_reason": result.finish_reason,
                    }
                ],
                "usage": result.usage,
            }
        )

    def sse(events: list[dict[str, Any]]) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            for i, event in enumerate(events):
                yield f"id: {i + 1}\nevent: message\ndata: {json.dumps(event)}\n\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @app.post("/ml/v1/text/chat_stream")
    async def chat_stream(request: Request) -> Response:
        body, bad = await checked(request)
        if bad is not None:
            return bad
        result = chat_answer(body)
        parts = pieces(result.words)
        events = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            events.append(
                {
                    "id": "chat-2",
                    "model_id": body["model_id"],
                    "created": int(time.time()),
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": part},
                            "finish_reason": result.finish_reason if last else None,
                        }
                    ],
                    **({"usage": result.usage} if last else {}),
                }
            )
        return sse(events)

    def generation(body: dict[str, Any]) -> Any:
        parameters = body.get("parameters") or {}
        return answer(
            body["input"],
            prompt_tokens=len(body["input"].split()),
            max_tokens=parameters.get("max_new_tokens", 20),
            stop=parameters.get("stop_sequences"),
        )

    def stop_reason(result: Any) -> str:
        return "max_tokens" if result.finish_reason == "length" else "eos_token"

    @app.post("/ml/v1/text/generation")
    async def generate(request: Request) -> Response:
        body, bad = await checked(request)
        if bad is not None:
            return bad
        result = generation(body)
        return JSONResponse(
            {
                "model_id": body["model_id"],
                "created_at": "2025-06-01T00:00:00.000Z",
                "results": [
                    {
                        "generated_text": result.text,
                        "generated_token_count": len(result.words),
                        "input_token_count": result.prompt_tokens,
                        "stop_reason": stop_reason(result),
                    }
                ],
            }
        )

    @app.post("/ml/v1/text/generation_stream")
    async def generate_stream(request: Request) -> Response:
        body, bad = await checked(request)
        if bad is not None:
            return bad
        result = generation(body)
        parts = pieces(result.words)
        events = [
            {
                "model_id": body["model_id"],
                "created_at": "2025-06-01T00:00:00.000Z",
                "results": [
                    {
                        "generated_text": part,
                        "generated_token_count": i + 1,
                        "input_token_count": result.prompt_tokens,
                        "stop_reason": stop_reason(result)
                        if i == len(parts) - 1
                        else "not_finished",
                    }
                ],
            }
            for i, part in enumerate(parts)
        ]
        return sse(events)

    @app.post("/ml/v1/text/embeddings")
    async def embeddings(request: Request) -> Response:
        body, bad = await checked(request)
        if bad is not None:
            return bad
        return JSONResponse(
            {
                "model_id": body["model_id"],
                "results": [{"embedding": embed(t, None)} for t in body["inputs"]],
                "created_at": "2025-06-01T00:00:00.000Z",
                "input_token_count": sum(len(t.split()) for t in body["inputs"]),
            }
        )

    return app
