"""Hugging Face Text Generation Inference's HTTP protocol on 127.0.0.1, for `remote::tgi`.

- `GET /info`: the served model (`model_id`, `max_total_tokens`, ...).
- `POST /generate`: `{inputs, parameters}` answered `{generated_text, details}`
  (`finish_reason` length / eos_token / stop_sequence, `generated_tokens`).
- `POST /generate_stream`: server-sent token events (`{index, token: {id, text, logprob,
  special}, generated_text, details}`), the end-of-sequence token last (`special: true`),
  the last event with the whole `generated_text` and `details`; no `[DONE]`.
- `/v1/...`: the Messages API, which is OpenAI's (`openai_router`).

Parameters are validated as TGI does (422 `{error, error_type: "validation"}`): a
temperature must be positive, top_p strictly between 0 and 1. The model echoes as in
`remote_servers`: "echo: <inputs>", one token per word.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.unit.support.remote_servers import FakeService, answer, openai_router, pieces

EOS = "</s>"


def _invalid(message: str) -> Response:
    return JSONResponse({"error": message, "error_type": "validation"}, 422)


def _validate(parameters: dict[str, Any]) -> Response | None:
    temperature = parameters.get("temperature")
    if temperature is not None and temperature <= 0:
        return _invalid("`temperature` must be strictly positive")
    top_p = parameters.get("top_p")
    if top_p is not None and not 0 < top_p < 1:
        return _invalid("`top_p` must be > 0.0 and < 1.0")
    new = parameters.get("max_new_tokens")
    if new is not None and new < 1:
        return _invalid("`max_new_tokens` must be strictly positive")
    return None


def _finish(stop: list[str], text: str, finish_reason: str) -> str:
    if finish_reason == "length":
        return "length"
    return "stop_sequence" if any(s and s in f"echo: {text}" for s in stop) else "eos_token"


def tgi_app(svc: FakeService) -> FastAPI:
    app = FastAPI()
    svc.any_model = True
    app.include_router(openai_router(svc), prefix="/v1")

    @app.get("/info")
    async def info(request: Request) -> Response:
        _, _, early = await svc.intake(request)
        if early is not None:
            return early
        return JSONResponse(
            {
                "model_id": svc.models[0],
                "model_dtype": "torch.float16",
                "max_input_tokens": 4095,
                "max_total_tokens": 4096,
                "version": "2.4.1",
            }
        )

    def generation(body: Any) -> tuple[Any, Response | None]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
            return None, _invalid("`inputs` must be a string")
        parameters = body.get("parameters") or {}
        bad = _validate(parameters)
        if bad is not None:
            return None, bad
        stop = list(parameters.get("stop") or [])
        result = answer(
            body["inputs"],
            prompt_tokens=len(body["inputs"].split()),
            max_tokens=parameters.get("max_new_tokens", 20),
            stop=stop,
        )
        return (result, _finish(stop, body["inputs"], result.finish_reason)), None

    @app.post("/generate")
    async def generate(request: Request) -> Response:
        body, _, early = await svc.intake(request)
        if early is not None:
            return early
        made, bad = generation(body)
        if bad is not None:
            return bad
        result, finish = made
        out: dict[str, Any] = {"generated_text": result.text}
        if (body.get("parameters") or {}).get("details"):
            out["details"] = {
                "finish_reason": finish,
                "generated_tokens": len(result.words) + (finish == "eos_token"),
                "seed": None,
            }
        return JSONResponse(out)

    @app.post("/")
    async def root(request: Request) -> Response:
        # What Hugging Face's Inference API and endpoints take: `stream` in the body; a
        # whole answer is a list of one generation.
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        if isinstance(body, dict) and body.get("stream"):
            return await generate_stream(request)
        answer_ = await generate(request)
        if answer_.status_code != 200:
            return answer_
        return JSONResponse([json.loads(bytes(answer_.body))])

    @app.post("/generate_stream")
    async def generate_stream(request: Request) -> Response:
        body, mid_stream, early = await svc.intake(request)
        if early is not None:
            return early
        made, bad = generation(body)
        if bad is not None:
            return bad
        result, finish = made
        tokens = [{"text": p, "special": False} for p in pieces(result.words)]
        if finish == "eos_token":
            tokens.append({"text": EOS, "special": True})
        events: list[dict[str, Any]] = []
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            events.append(
                {
                    "index": i + 1,
                    "token": {"id": 100 + i, "logprob": -0.25, **token},
                    "top_tokens": None,
                    "generated_text": result.text if last else None,
                    "details": (
                        {"finish_reason": finish, "generated_tokens": len(tokens), "seed": None}
                        if last
                        else None
                    ),
                }
            )
        if mid_stream is not None:
            events = [*events[:2], {"error": "the shard died", "error_type": "generation"}]

        async def stream() -> AsyncIterator[bytes]:
            for event in events:
                yield f"data:{json.dumps(event)}\n\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def hf_endpoints_app(svc: FakeService, endpoints: dict[str, dict[str, Any]]) -> FastAPI:
    """Hugging Face's Inference Endpoints API (`GET /v2/endpoint/{namespace}/{name}`) and
    the Hub's `GET /api/whoami-v2`, for the token `svc.required_key`."""
    app = FastAPI()

    @app.get("/v2/endpoint/{namespace}/{name}")
    async def endpoint(namespace: str, name: str, request: Request) -> Response:
        _, _, early = await svc.intake(request)
        if early is not None:
            return early
        found = endpoints.get(f"{namespace}/{name}")
        if found is None:
            return JSONResponse({"error": "Endpoint not found"}, 404)
        return JSONResponse({"name": name, "model": {"repository": "m"}, "status": found})

    @app.get("/api/whoami-v2")
    async def whoami(request: Request) -> Response:
        _, _, early = await svc.intake(request)
        if early is not None:
            return early
        return JSONResponse({"type": "user", "name": "alice"})

    return app
