"""Small inference services for the remote adapters' tests, on real sockets.

`FakeService` runs a FastAPI app with uvicorn in a thread on 127.0.0.1. `openai_app` is
OpenAI's API (`/models`, `/chat/completions`, `/completions`, `/embeddings`), under `/v1`
and the other prefixes hosted services use (`/openai/v1`, `/inference/v1`), and
Llama Stack's own (`/v1/openai/v1`);
`remote_ollama_server.ollama_app` is Ollama's.

The model behind them echoes: it answers "echo: <last user text>", one token per word;
given tools (and a tool choice other than none) it calls the chosen tool (every tool when
the text says "both") with the text as the tool's first parameter. max_tokens, stop,
logprobs, response_format and usage behave as the real APIs say.

Every request is recorded (`requests`: method, path, headers, JSON body), so tests see
what an adapter sent; `fail(...)` makes the next requests fail with a status, a delay,
or an error in the middle of a stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from stackray.providers.registry import builtin_spec, import_object
from stackray.runtime.provider_config import parse_provider_config

MODELS = ["served-model", "other-model"]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    """How the next request fails: `status` (with `body` and `headers`), after `delay`
    seconds; with `mid_stream`, a streamed answer starts and then reports the error."""

    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    mid_stream: bool = False


class FakeService:
    def __init__(self, build: Callable[[FakeService], FastAPI]) -> None:
        self.requests: list[Recorded] = []
        self.failures: deque[Failure] = deque()
        self.models = list(MODELS)
        self.lists_models = True
        self.required_key: str | None = None
        self.any_model = False
        """Answer whatever model a request names (TGI's Messages API serves its one model)."""
        self.app = build(self)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeService:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake service did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self, models: list[str] | None = None) -> FakeService:
        self.requests.clear()
        self.failures.clear()
        self.models = list(models or MODELS)
        self.lists_models = True
        self.required_key = None
        return self

    def fail(self, *failures: Failure) -> None:
        self.failures.extend(failures)

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def intake(self, request: Request) -> tuple[Any, Failure | None, Response | None]:
        """Record the request; the body, a mid-stream failure to play, or a response to
        send instead of the normal answer."""
        raw = await request.body()
        body = json.loads(raw) if raw else None
        self.requests.append(
            Recorded(request.method, request.url.path, dict(request.headers), body)
        )
        failure = self.failures.popleft() if self.failures else None
        if failure is not None and failure.delay:
            await asyncio.sleep(failure.delay)
        if failure is not None and failure.status is not None and not failure.mid_stream:
            return body, None, JSONResponse(failure.body, failure.status, failure.headers)
        if self.required_key and request.headers.get("authorization") != (
            f"Bearer {self.required_key}"
        ):
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            return body, None, JSONResponse({"error": error}, 401)
        mid_stream = failure if failure is not None and failure.mid_stream else None
        return body, mid_stream, None


# ---- the echo model --------------------------------------------------------------------


def text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content or ""


@dataclass
class Answer:
    words: list[str]
    finish_reason: str
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def usage(self) -> dict[str, int]:
        completion = len(self.words)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def answer(
    prompt: str,
    *,
    prompt_tokens: int,
    max_tokens: int | None = None,
    stop: Any = None,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
    json_output: bool = False,
) -> Answer:
    if tools and tool_choice != "none":
        if isinstance(tool_choice, dict):
            chosen = [t for t in tools if t["function"]["name"] == tool_choice["function"]["name"]]
        else:
            chosen = tools if "both" in prompt else tools[:1]
        calls = []
        for i, tool in enumerate(chosen):
            params = list((tool["function"].get("parameters") or {}).get("properties") or {})
            arguments = {params[0]: prompt} if params else {}
            calls.append(
                {"id": f"call_{i}", "name": tool["function"]["name"], "arguments": arguments}
            )
        return Answer([], "tool_calls", calls, prompt_tokens)
    text = json.dumps({"echo": prompt}) if json_output else f"echo: {prompt}"
    finish = "stop"
    for s in [stop] if isinstance(stop, str) else stop or []:
        if s and s in text:
            text = text[: text.index(s)]
    words = text.split(" ")
    if max_tokens is not None and len(words) > max_tokens:
        words, finish = words[:max_tokens], "length"
    return Answer(words, finish, [], prompt_tokens)


def pieces(words: list[str]) -> list[str]:
    """The words of a text as streamed pieces that join back into it."""
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def top_logprobs(word: str, k: int) -> list[dict[str, Any]]:
    return [{"token": word, "logprob": -0.25}, {"token": "alt", "logprob": -2.5}][: max(k, 1)]


def embed(text: str, dimensions: int | None) -> list[float]:
    n = dimensions or 4
    return ([float(len(text)), float(len(text.split()))] + [0.25] * n)[:n]


# ---- OpenAI's API ----------------------------------------------------------------------


def sse(events: list[Any]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for event in events:
            if isinstance(event, bytes):
                yield event
            else:
                yield f"data: {json.dumps(event)}\n\n".encode()
            await asyncio.sleep(0)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


def _mid_stream(failure: Failure, events: list[Any]) -> list[Any]:
    error = {
        "error": {"message": "the engine died", "type": "internal_error", "code": failure.status}
    }
    return [*events[:2], error]


def openai_router(svc: FakeService) -> APIRouter:
    router = APIRouter()

    def unknown_model(body: dict[str, Any]) -> Response | None:
        if svc.any_model or body.get("model") in svc.models:
            return None
        message = f"The model `{body.get('model')}` does not exist."
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, 404)

    @router.get("/models")
    async def models(request: Request) -> Response:
        _, _, early = await svc.intake(request)
        if early is not None:
            return early
        if not svc.lists_models:
            return JSONResponse({"detail": "Not Found"}, 404)
        data = [{"id": m, "object": "model", "created": 1, "owned_by": "fake"} for m in svc.models]
        return JSONResponse({"object": "list", "data": data})

    @router.post("/chat/completions")
    async def chat(request: Request) -> Response:
        body, failure, early = await svc.intake(request)
        if early is not None or (early := unknown_model(body)) is not None:
            return early
        messages = body["messages"]
        user = [m for m in messages if m["role"] == "user"]
        a = answer(
            text_of(user[-1]["content"]) if user else "",
            prompt_tokens=sum(len(text_of(m.get("content")).split()) for m in messages),
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            stop=body.get("stop"),
            tools=body.get("tools"),
            tool_choice=body.get("tool_choice"),
            json_output=(body.get("response_format") or {}).get("type") == "json_schema",
        )
        k = body.get("top_logprobs") or 0
        logprobs = (
            {
                "content": [
                    {"token": w, "logprob": -0.25, "top_logprobs": top_logprobs(w, k)}
                    for w in a.words
                ]
            }
            if body.get("logprobs")
            else None
        )
        calls = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in a.tool_calls
        ]
        base = {"id": "chatcmpl-1", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": a.text if not calls else None,
            }
            if calls:
                message["tool_calls"] = calls
            choice = {
                "index": 0,
                "message": message,
                "finish_reason": a.finish_reason,
                "logprobs": logprobs,
            }
            return JSONResponse(
                {**base, "object": "chat.completion", "choices": [choice], "usage": a.usage}
            )

        def chunk(
            delta: dict[str, Any], finish: str | None = None, lp: Any = None
        ) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": lp}
            return {**base, "object": "chat.completion.chunk", "choices": [choice]}

        events: list[Any] = [chunk({"role": "assistant", "content": ""})]
        for word, piece in zip(a.words, pieces(a.words), strict=True):
            lp = {
                "content": [
                    {"token": word, "logprob": -0.25, "top_logprobs": top_logprobs(word, k)}
                ]
            }
            events.append(chunk({"content": piece}, lp=lp if logprobs else None))
        for i, call in enumerate(calls):
            head = {"index": i, "id": call["id"], "type": "function"}
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                **head,
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 4):
                piece = arguments[start : start + 4]
                events.append(
                    chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                )
        events.append(chunk({}, a.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": a.usage}
            )
        return sse(_mid_stream(failure, events) if failure else events)

    @router.post("/completions")
    async def completions(request: Request) -> Response:
        body, failure, early = await svc.intake(request)
        if early is not None or (early := unknown_model(body)) is not None:
            return early
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        k = body.get("logprobs")
        answers = [
            answer(
                p,
                prompt_tokens=len(p.split()),
                max_tokens=body.get("max_tokens") or 16,
                stop=body.get("stop"),
            )
            for p in prompts
        ]

        def legacy_logprobs(words: list[str]) -> dict[str, Any] | None:
            if not k:
                return None
            return {
                "tokens": words,
                "token_logprobs": [-0.25] * len(words),
                "top_logprobs": [
                    {t["token"]: t["logprob"] for t in top_logprobs(w, k)} for w in words
                ],
            }

        base = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            choices = [
                {
                    "index": i,
                    "text": a.text,
                    "finish_reason": a.finish_reason,
                    "logprobs": legacy_logprobs(a.words),
                }
                for i, a in enumerate(answers)
            ]
            usage = {
                key: sum(a.usage[key] for a in answers)
                for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            }
            return JSONResponse({**base, "choices": choices, "usage": usage})
        a = answers[0]
        events: list[Any] = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "text": piece,
                        "finish_reason": None,
                        "logprobs": legacy_logprobs([w]),
                    }
                ],
            }
            for w, piece in zip(a.words, pieces(a.words), strict=True)
        ]
        events.append(
            {**base, "choices": [{"index": 0, "text": "", "finish_reason": a.finish_reason}]}
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": a.usage})
        return sse(_mid_stream(failure, events) if failure else events)

    @router.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        body, _, early = await svc.intake(request)
        if early is not None or (early := unknown_model(body)) is not None:
            return early
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(texts):
            vector: Any = embed(text, body.get("dimensions"))
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        # Answer in reverse order: clients must sort by index.
        return JSONResponse(
            {"object": "list", "data": data[::-1], "model": body["model"], "usage": usage}
        )

    return router


def openai_app(svc: FakeService) -> FastAPI:
    app = FastAPI()
    # /v1/openai/v1: where a Llama Stack server serves OpenAI's routes (remote::passthrough).
    for prefix in ("/v1", "/openai/v1", "/inference/v1", "/v1/openai/v1"):
        app.include_router(openai_router(svc), prefix=prefix)
    return app


# ---- helpers for tests -----------------------------------------------------------------


def closed_port_url() -> str:
    """A URL on which nothing listens (connections are refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def make_adapter(provider_type: str, config: dict[str, Any], provider_id: str = "remote") -> Any:
    """A remote adapter built as the resolver builds it: registry spec, config class, impl."""
    spec = builtin_spec(provider_type)
    assert spec is not None, provider_type
    impl = import_object(spec.impl)
    return impl(parse_provider_config(spec, config), {}, SimpleNamespace(provider_id=provider_id))


def call(adapter: Any, method: str, *args: Any) -> Any:
    """Await `adapter.method(*args)` in a fresh event loop, closing its connections after."""

    async def main() -> Any:
        try:
            return await getattr(adapter, method)(*args)
        finally:
            await adapter.close()

    return asyncio.run(main())


def collect(adapter: Any, method: str, *args: Any) -> list[Any]:
    """Every chunk of the stream `adapter.method(*args)`, in a fresh event loop."""

    async def main() -> list[Any]:
        try:
            return [chunk async for chunk in getattr(adapter, method)(*args)]
        finally:
            await adapter.close()

    return asyncio.run(main())
