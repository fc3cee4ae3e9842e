"""Models API, health/version/inspect/providers, errors, and consistency across replicas."""

from __future__ import annotations

import concurrent.futures

import pytest
from llama_stack_client import BadRequestError, NotFoundError

from .conftest import EMBEDDING_MODEL, MODEL


def test_health_version(stack):
    client = stack.client()
    assert client.inspect.health().status == "OK"
    assert client.inspect.version().version


def test_providers(stack):
    client = stack.client()
    providers = {p.provider_id: p for p in client.providers.list()}
    assert providers["transformers"].provider_type == "inline::transformers"
    assert providers["echo"].provider_type == "remote::echo"
    one = client.providers.retrieve("sentence-transformers")
    assert one.api == "inference"
    assert stack.http().get("/v1/providers/nope").status_code == 404


def test_inspect_routes_lists_inference(stack):
    routes = {(r.route, r.method) for r in stack.client().routes.list()}
    assert ("/v1/inference/chat-completion", "POST") in routes
    assert ("/v1/openai/v1/chat/completions", "POST") in routes


def test_models_list_get(stack):
    client = stack.client()
    models = {m.identifier: m for m in client.models.list()}
    assert models[MODEL].model_type == "llm"
    assert models[EMBEDDING_MODEL].model_type == "embedding"
    assert models[EMBEDDING_MODEL].metadata["embedding_dimension"] == 384
    assert client.models.retrieve(MODEL).provider_id == "transformers"
    with pytest.raises(NotFoundError):
        client.models.retrieve("nope")


def test_register_use_unregister_across_replicas(stack):
    """Two inference replicas: what one registers, every request sees at once."""
    client = stack.client()
    client.models.register(
        model_id="echo-2", provider_id="echo", provider_model_id="echo-2", model_type="llm"
    )

    def use(_: int) -> str:
        r = client.inference.chat_completion(
            model_id="echo-2", messages=[{"role": "user", "content": "x"}]
        )
        return r.completion_message.content

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(use, range(24))) == {"echo: x"}
    assert "echo-2" in {m.identifier for m in client.models.list()}
    client.models.unregister("echo-2")

    def gone(_: int) -> bool:
        try:
            client.models.retrieve("echo-2")
        except NotFoundError:
            return True
        return False

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(gone, range(24)))


def test_both_gateway_replicas_answer(stack):
    from ray import serve

    status = serve.status().applications["stackray"].deployments["gateway"]
    assert status.replica_states.get("RUNNING") == 2


def test_register_with_unknown_provider_400(stack):
    with pytest.raises(BadRequestError, match="ghost"):
        stack.client().models.register(model_id="x", provider_id="ghost")


def test_register_bad_model_path_400(stack):
    with pytest.raises(BadRequestError, match="/no/such/model"):
        stack.client().models.register(
            model_id="x", provider_id="transformers", provider_model_id="/no/such/model"
        )


def test_register_conflict_409(stack):
    r = stack.http().post(
        "/v1/models", json={"model_id": MODEL, "provider_id": "echo", "provider_model_id": "other"}
    )
    assert r.status_code == 409 and MODEL in r.json()["detail"]


def test_malformed_body_400_names_field(stack):
    http = stack.http()
    r = http.post(
        "/v1/inference/chat-completion",
        json={"model_id": MODEL, "messages": [{"role": "robot", "content": "x"}]},
    )
    assert r.status_code == 400
    assert "messages" in r.json()["error"]["param"]
    r = http.post("/v1/inference/chat-completion", json={"messages": []})
    assert r.status_code == 400 and "model_id" in r.json()["detail"]
    r = http.post(
        "/v1/inference/chat-completion",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    r = http.post(
        "/v1/inference/chat-completion", json={"model_id": MODEL, "messages": [], "typo_field": 1}
    )
    assert r.status_code == 400 and "typo_field" in r.json()["detail"]


def test_prompt_too_long_400(stack):
    text = "word " * 20000
    r = stack.http().post(
        "/v1/inference/chat-completion",
        json={"model_id": MODEL, "messages": [{"role": "user", "content": text}]},
    )
    assert r.status_code == 400 and "token" in r.json()["detail"]


def test_provider_data_header_crosses_deployments(stack):
    from llama_stack_client import LlamaStackClient

    client = LlamaStackClient(
        base_url=stack.base_url, provider_data={"echo_prefix": "via header: "}
    )
    r = client.inference.chat_completion(
        model_id="echo-model", messages=[{"role": "user", "content": "x"}]
    )
    assert r.completion_message.content == "via header: x"
