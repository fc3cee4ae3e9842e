"""Google's Gemini API on 127.0.0.1, for `remote::gemini`.

- `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`
  (server-sent events, each a GenerateContentResponse: the text in pieces, a function
  call whole, `finishReason` and `usageMetadata` on the last), `POST
  /v1beta/models/{model}:batchEmbedContents`, `GET /v1beta/models`.
- Requests need `x-goog-api-key` (`svc.required_key`, default "gemini-key"); bodies are
  validated as Gemini does (400 `INVALID_ARGUMENT`): `contents` non-empty, roles user or
  model, a `functionResponse` only after a `functionCall`.
- The model echoes the last user text ("echo: <text>"); given function declarations (and
  mode other than NONE) it calls the allowed one (every one when the text says "both") with
  the text as its first parameter; after a `functionResponse` it answers
  "result: <response>".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.unit.support.remote_servers import FakeService, answer, embed, pieces

MODELS = ["gemini-2.0-flash", "text-embedding-004"]
KEY = "gemini-key"


def _invalid(message: str, status: int = 400, kind: str = "INVALID_ARGUMENT") -> Response:
    return JSONResponse({"error": {"code": status, "message": message, "status": kind}}, status)


def _validate(body: Any) -> Response | None:
    contents = body.get("contents") if isinstance(body, dict) else None
    if not contents:
        return _invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            return _invalid(f"* GenerateContentRequest.contents[{i}].role: must be user or model")
        for part in content.get("parts") or []:
            if "functionResponse" in part:
                before = contents[i - 1].get("parts") if i else []
                if not any("functionCall" in p for p in before or []):
                    return _invalid(
                        "Please ensure that function response turn comes immediately after a "
                        "function call turn."
                    )
    return None


def _reply(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, int]:
    parts = body["contents"][-1]["parts"]
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    if responses:
        text = f"result: {json.dumps(responses[0]['response'])}"
        return [{"text": text}], "STOP", len(text.split())
    prompt = "".join(p.get("text", "") for p in parts)
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    mode = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = mode.get("allowedFunctionNames")
    tools = [
        {"function": {"name": d["name"], "parameters": d.get("parameters")}}
        for d in declarations
        if not allowed or d["name"] in allowed
    ]
    config = body.get("generationConfig") or {}
    result = answer(
        prompt,
        prompt_tokens=len(prompt.split()),
        max_tokens=config.get("maxOutputTokens"),
        stop=config.get("stopSequences"),
        tools=tools or None,
        tool_choice="none" if mode.get("mode") == "NONE" else None,
    )
    if result.tool_calls:
        return (
            [
                {"functionCall": {"name": c["name"], "args": c["arguments"]}}
                for c in result.tool_calls
            ],
            "STOP",
            5,
        )
    reason = "MAX_TOKENS" if result.finish_reason == "length" else "STOP"
    return [{"text": result.text}], reason, len(result.words)


def gemini_app(svc: FakeService) -> FastAPI:
    app = FastAPI()
    svc.required_key = KEY

    async def checked(request: Request) -> tuple[Any, Response | None]:
        body, _, early = await svc.intake(request)
        if early is not None and early.status_code != 401:
            return body, early
        if request.headers.get("x-goog-api-key") != svc.required_key:
            return body, _invalid("API key not valid. Please pass a valid API key.", 400)
        return body, None

    @app.get("/v1beta/models")
    async def models(request: Request) -> Response:
        _, bad = await checked(request)
        if bad is not None:
            return bad
        return JSONResponse(
            {
                "models": [
                    {"name": f"models/{m}", "supportedGenerationMethods": ["generateContent"]}
                    for m in MODELS
                ]
            }
        )

    @app.post("/v1beta/models/{call}")
    async def model_call(call: str, request: Request) -> Response:
        body, bad = await checked(request)
        if bad is not None:
            return bad
        model, _, method = call.partition(":")
        if model not in MODELS:
            return _invalid(f"models/{model} is not found for API version v1beta", 404, "NOT_FOUND")
        if method == "batchEmbedContents":
            return JSONResponse(
                {
                    "embeddings": [
                        {
                            "values": embed(
                                r["content"]["parts"][0]["text"], r.get("outputDimensionality")
                            )
                        }
                        for r in body["requests"]
                    ]
                }
            )
        invalid = _validate(body)
        if invalid is not None:
            return invalid
        parts, reason, output_tokens = _reply(body)
        usage = {
            "promptTokenCount": 9,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": 9 + output_tokens,
        }
        if method == "generateContent":
            return JSONResponse(
                {
                    "candidates": [
                        {
                            "content": {"role": "model", "parts": parts},
                            "finishReason": reason,
                            "index": 0,
                        }
                    ],
                    "usageMetadata": usage,
                    "modelVersion": model,
                    "responseId": "resp-1",
                }
            )
        if method != "streamGenerateContent" or request.query_params.get("alt") != "sse":
            return _invalid(f"unknown method {method}", 404, "NOT_FOUND")
        if "text" in parts[0]:
            pieces_ = pieces(parts[0]["text"].split(" "))
            events = [{"content": {"role": "model", "parts": [{"text": p}]}} for p in pieces_]
        else:
            events = [{"content": {"role": "model", "parts": parts}}]
        events[-1]["finishReason"] = reason
        out = [
            {
                "candidates": [{**e, "index": 0}],
                "modelVersion": model,
                "responseId": "resp-2",
                **({"usageMetadata": usage} if i == len(events) - 1 else {}),
            }
            for i, e in enumerate(events)
        ]

        async def stream() -> AsyncIterator[bytes]:
            for event in out:
                yield f"data: {json.dumps(event)}\r\n\r\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app
