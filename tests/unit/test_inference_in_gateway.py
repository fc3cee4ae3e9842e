"""`deployments.inference.in_gateway`: the `Gateway` replica class builds its own inference
router over the model servers and serves the inference routes with it (no Ray: the model
server and the inference deployment are the real deployment classes, in this process)."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackray.deployments.app import Gateway
from stackray.deployments.model_server import ModelServerDeployment
from stackray.runtime.config import parse_config
from stackray.runtime.stack import build_inference_router


def config(data_dir: Any, in_gateway: bool = True) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "colocated",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"},
                {
                    "provider_id": "sentence-transformers",
                    "provider_type": "inline::sentence-transformers",
                    "config": {"num_threads": 1},
                },
            ]
        },
        "models": [
            {"model_id": "m", "provider_id": "echo"},
            {
                "model_id": "all-MiniLM-L6-v2",
                "provider_id": "sentence-transformers",
                "provider_model_id": "sentence-transformers/all-MiniLM-L6-v2",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 384},
            },
        ],
        "storage": {"data_dir": str(data_dir)},
        "deployments": {"inference": {"in_gateway": in_gateway}},
    }


class InferenceDeploymentStandIn:
    """The inference deployment as the gateway sees it: only its health is asked."""

    def __init__(self) -> None:
        self.health_calls = 0
        self.healthy = True

    async def health(self) -> None:
        self.health_calls += 1
        if not self.healthy:
            raise RuntimeError("inference deployment still starting")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the gateway called the inference deployment's {name}")


async def replica(cls: type, *args: Any) -> Any:
    """An instance of a deployment class with an `async def __init__`, as Serve makes it."""
    obj = cls.__new__(cls)
    await obj.__init__(*args)
    return obj


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    raw = config(tmp_path_factory.mktemp("colocated"))
    standin = InferenceDeploymentStandIn()

    async def build() -> Gateway:
        server = await replica(ModelServerDeployment, raw, "inference", "sentence-transformers")
        return await replica(
            Gateway, raw, {"inference": standin}, {"sentence-transformers": server}
        )

    gw = asyncio.run(build())
    with TestClient(gw.__serve_build_asgi_app__()) as client:
        yield client, standin


def test_chat_is_served_by_the_gateway_router(gateway):
    client, standin = gateway
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["completion_message"]["content"] == "echo: hi"
    r = client.post(
        "/v1/openai/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "yo"}], "stream": True},
    )
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")


def test_embeddings_reach_the_model_server(gateway):
    client, _ = gateway
    r = client.post(
        "/v1/inference/embeddings",
        json={"model_id": "all-MiniLM-L6-v2", "contents": ["a cat", "a dog"]},
    )
    assert r.status_code == 200, r.text
    vectors = r.json()["embeddings"]
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert vectors[0] != vectors[1]
    r = client.post(
        "/v1/openai/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "a cat"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["embedding"][:3] == pytest.approx(vectors[0][:3], abs=1e-4)


def test_models_registered_once_and_listed(gateway):
    client, _ = gateway
    ids = sorted(m["identifier"] for m in client.get("/v1/models").json()["data"])
    assert ids == ["all-MiniLM-L6-v2", "m"]
    r = client.get("/v1/models/nope")
    assert r.status_code == 404


def test_health_also_waits_for_the_inference_deployment(gateway):
    client, standin = gateway
    before = standin.health_calls
    assert client.get("/v1/health").json() == {"status": "OK"}
    assert standin.health_calls == before + 1
    standin.healthy = False
    try:
        assert client.get("/v1/health").status_code == 503
    finally:
        standin.healthy = True


def _register_in_a_process(raw: dict[str, Any], queue: Any) -> None:
    async def main() -> list[str]:
        stack = parse_config(raw)
        router = await build_inference_router(stack, {})
        return sorted(m.identifier for m in router.list_models().data)

    queue.put(asyncio.run(main()))


def test_registration_at_start_from_several_processes_is_idempotent(tmp_path):
    """Gateway and inference replicas all register the config's models at start, in
    separate processes, on one registry store."""
    raw = config(tmp_path)
    raw["providers"]["inference"] = raw["providers"]["inference"][:1]
    raw["models"] = [
        {"model_id": f"m{i}", "provider_id": "echo", "provider_model_id": f"echo-{i}"}
        for i in range(20)
    ]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_register_in_a_process, args=(raw, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    expected = sorted(f"m{i}" for i in range(20))
    assert results == [expected] * 4
    router = asyncio.run(build_inference_router(parse_config(raw), {}))
    models = router.list_models().data
    assert sorted(m.identifier for m in models) == expected
    assert {m.identifier: m.provider_resource_id for m in models} == {
        f"m{i}": f"echo-{i}" for i in range(20)
    }
