"""`remote::hf::serverless` and `remote::hf::endpoint` against TGI's protocol at a model's
root URL (`remote_tgi_server`), and Hugging Face's Inference Endpoints API on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from stackray.api.errors import NotFoundError, ServiceUnavailableError
from stackray.api.inference import ChatCompletionRequest, CompletionRequest
from tests.unit.support.remote_servers import FakeService, call, collect, make_adapter
from tests.unit.support.remote_tgi_server import hf_endpoints_app, tgi_app

TOKEN = "hf_token"


@pytest.fixture(scope="module")
def _tgi() -> Iterator[FakeService]:
    service = FakeService(tgi_app).start()
    yield service
    service.stop()


@pytest.fixture()
def tgi(_tgi: FakeService) -> FakeService:
    return _tgi.reset(["meta-llama/Llama-3.1-8B-Instruct"])


def completion(text: str) -> CompletionRequest:
    return CompletionRequest(model_id="m", content=text)


def test_serverless_posts_tgis_protocol_to_the_models_root_with_the_token(tgi: FakeService):
    tgi.required_key = TOKEN
    config = {
        "huggingface_repo": "meta-llama/Llama-3.1-8B-Instruct",
        "api_token": TOKEN,
        "url": tgi.url,
    }
    adapter = make_adapter("remote::hf::serverless", config, "hf")
    assert call(adapter, "completion", completion("a b")).content == "echo: a b"
    assert tgi.last.path == "/" and "stream" not in tgi.last.body
    chunks = collect(adapter, "completion_stream", completion("c d"))
    assert "".join(c.delta for c in chunks) == "echo: c d"
    assert tgi.last.path == "/" and tgi.last.body["stream"] is True
    chat = ChatCompletionRequest(model_id="m", messages=[{"role": "user", "content": "hi"}])
    assert call(adapter, "chat_completion", chat).completion_message.content == "echo: hi"
    assert tgi.last.path == "/v1/chat/completions"
    assert {r.headers["authorization"] for r in tgi.requests} == {f"Bearer {TOKEN}"}


def test_serverless_default_url_is_the_inference_apis():
    from stackray.providers.remote.inference.huggingface.config import InferenceAPIImplConfig

    config = InferenceAPIImplConfig(huggingface_repo="org/model")
    assert config.root_url() == "https://api-inference.huggingface.co/models/org/model"


def endpoint_adapter(endpoints_api: FakeService, name: str) -> object:
    config = {
        "endpoint_name": name,
        "api_token": TOKEN,
        "endpoints_api_url": f"{endpoints_api.url}/v2",
        "hub_url": endpoints_api.url,
    }
    return make_adapter("remote::hf::endpoint", config, "hf-endpoint")


def test_an_endpoint_is_found_by_name_at_start_then_called(tgi: FakeService):
    endpoints = {
        "alice/llama": {"state": "running", "url": tgi.url},
        "acme/paused": {"state": "paused", "url": None},
    }
    api = FakeService(lambda svc: hf_endpoints_app(svc, endpoints)).start()
    try:
        api.required_key = TOKEN
        adapter = endpoint_adapter(api, "llama")  # no namespace: the token's user
        asyncio.run(adapter.initialize())  # type: ignore[attr-defined]
        assert [r.path for r in api.requests] == ["/api/whoami-v2", "/v2/endpoint/alice/llama"]
        assert call(adapter, "completion", completion("x y")).content == "echo: x y"
        assert tgi.last.path == "/"
        listed = call(adapter, "list_models")
        assert [m.identifier for m in listed] == ["meta-llama/Llama-3.1-8B-Instruct"]

        paused = endpoint_adapter(api, "acme/paused")
        with pytest.raises(ServiceUnavailableError, match="acme/paused is paused"):
            asyncio.run(paused.initialize())  # type: ignore[attr-defined]
        missing = endpoint_adapter(api, "acme/none")
        with pytest.raises(NotFoundError, match="Endpoint not found"):
            asyncio.run(missing.initialize())  # type: ignore[attr-defined]
    finally:
        api.stop()
