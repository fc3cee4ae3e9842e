"""`remote::passthrough` in front of another Llama Stack server: here a real stackray
gateway over HTTP on 127.0.0.1 (its inference on remote::vllm in front of the OpenAI
stand-in). Llama Stack chat, OpenAI chat (whole and streamed), embeddings and the model
listing all go through the upstream's `/v1/openai/v1` routes, with the key of the request."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from typing import Any

import pytest

from stackray.api.inference import (
    ChatCompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
)
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.calls import local_client
from stackray.runtime.config import parse_config
from stackray.runtime.request_context import provider_data_var
from stackray.runtime.routers.inference import build_router
from tests.unit.support.remote_servers import FakeService, call, collect, make_adapter


@pytest.fixture()
def upstream(openai_server: FakeService, tmp_path: Any) -> Iterator[FakeService]:
    stack = parse_config(
        {
            "version": "2",
            "image_name": "upstream",
            "apis": ["inference"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "vllm",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{openai_server.url}/v1"},
                    }
                ]
            },
            "models": [
                {
                    "model_id": "up-model",
                    "provider_id": "vllm",
                    "provider_model_id": "served-model",
                },
                {
                    "model_id": "up-embed",
                    "provider_id": "vllm",
                    "provider_model_id": "served-model",
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 3},
                },
            ],
            "storage": {"data_dir": str(tmp_path / "upstream")},
        }
    )
    router = asyncio.run(build_router(stack, {}))
    app = create_gateway_app(stack, {"inference": local_client(router, "inference")})
    seen: list[tuple[str, str | None]] = []

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        seen.append((request.url.path, request.headers.get("authorization")))
        return await call_next(request)

    service = FakeService(lambda _svc: app).start()
    service.seen = seen  # type: ignore[attr-defined]
    yield service
    service.stop()


def test_llama_stack_and_openai_calls_reach_the_upstream_stack(
    upstream: FakeService, openai_server: FakeService
):
    adapter = make_adapter("remote::passthrough", {"url": upstream.url}, "passthrough")
    answer = call(
        adapter,
        "chat_completion",
        ChatCompletionRequest(model_id="up-model", messages=[{"role": "user", "content": "hi"}]),
    )
    assert answer.completion_message.content == "echo: hi"
    # The upstream stack resolved its own model id to its provider's.
    assert openai_server.last.body["model"] == "served-model"

    request = OpenAIChatCompletionRequest(
        model="up-model", messages=[{"role": "user", "content": "one two"}], stream=True
    )
    chunks = collect(adapter, "openai_chat_completion_stream", request)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: one two"

    embedded = call(adapter, "embeddings", EmbeddingsRequest(model_id="up-embed", contents=["a b"]))
    direct = make_adapter("remote::vllm", {"url": f"{openai_server.url}/v1"}, "vllm")
    expected = call(
        direct, "embeddings", EmbeddingsRequest(model_id="served-model", contents=["a b"])
    )
    assert embedded.embeddings == expected.embeddings

    listed = call(adapter, "list_models")
    assert {"up-model", "up-embed"} <= {m.identifier for m in listed}


def test_the_requests_key_goes_to_the_upstream(upstream: FakeService):
    adapter = make_adapter(
        "remote::passthrough", {"url": upstream.url, "api_key": "configured"}, "passthrough"
    )
    request = ChatCompletionRequest(
        model_id="up-model", messages=[{"role": "user", "content": "x"}]
    )

    def with_key() -> Any:
        provider_data_var.set({"passthrough_api_key": "per-request"})
        return call(adapter, "chat_completion", request)

    contextvars.copy_context().run(with_key)
    call(adapter, "chat_completion", request)
    chats = [auth for path, auth in upstream.seen if path.endswith("/chat/completions")]  # type: ignore[attr-defined]
    assert chats == ["Bearer per-request", "Bearer configured"]
    assert {path for path, _ in upstream.seen} == {"/v1/openai/v1/chat/completions"}
