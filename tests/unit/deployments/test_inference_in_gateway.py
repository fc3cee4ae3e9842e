"""The `Gateway` replica class builds its own inference router over the model servers and
serves the inference routes with it: no inference deployment exists (no Ray: the model
server is the real deployment class, in this process, reached by a local transport)."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackray.deployments.app import Gateway
from stackray.deployments.provider import ProviderDeployment
from stackray.runtime.config import parse_config
from stackray.runtime.routers.inference import build_router as build_inference_router


def config(data_dir: Any) -> dict[str, Any]:
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
    }


class ReplicaHandle:
    """A deployment replica behind the handle interface the gateway uses
    (``handle.options(stream=True)``, ``handle.call_api.remote(...)``), in this process."""

    def __init__(self, replica: Any) -> None:
        self.replica = replica
        self.calls: list[str] = []
        self.healthy = True

    def options(self, stream: bool = False) -> Any:
        return self

    def __getattr__(self, entry: str) -> Any:
        handle = self

        class _Remote:
            def remote(self, ctx: Any, method: str, *args: Any) -> Any:
                handle.calls.append(method)
                if method == "health" and not handle.healthy:
                    raise RuntimeError("model server still starting")
                return getattr(handle.replica, entry)(ctx, method, *args)

        return _Remote()


async def replica(cls: type, *args: Any) -> Any:
    """An instance of a deployment class with an `async def __init__`, as Serve makes it."""
    obj = cls.__new__(cls)
    await obj.__init__(*args)
    return obj


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    raw = config(tmp_path_factory.mktemp("colocated"))

    async def build() -> tuple[Gateway, ReplicaHandle]:
        server = await replica(
            ProviderDeployment,
            raw,
            "inference",
            "sentence-transformers",
            "model-sentence-transformers",
        )
        handle = ReplicaHandle(server)
        return await replica(Gateway, raw, {}, {"sentence-transformers": handle}), handle

    gw, handle = asyncio.run(build())
    with TestClient(gw.__serve_build_asgi_app__()) as client:
        yield client, handle


def test_chat_is_served_by_the_gateway_router(gateway):
    client, _ = gateway
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
    client, handle = gateway
    handle.calls.clear()
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
    # One handle call per request, straight to the model server.
    assert len(handle.calls) == 2


def test_models_registered_once_and_listed(gateway):
    client, _ = gateway
    ids = sorted(m["identifier"] for m in client.get("/v1/models").json()["data"])
    assert ids == ["all-MiniLM-L6-v2", "m"]
    r = client.get("/v1/models/nope")
    assert r.status_code == 404


def test_health_is_ok_once_the_gateway_router_answers(gateway):
    client, _ = gateway
    assert client.get("/v1/health").json() == {"status": "OK"}


def _register_in_a_process(raw: dict[str, Any], queue: Any) -> None:
    async def main() -> list[str]:
        stack = parse_config(raw)
        router = await build_inference_router(stack, {})
        return sorted(m.identifier for m in router.list_models().data)

    queue.put(asyncio.run(main()))


def test_registration_at_start_from_several_processes_is_idempotent(tmp_path):
    """Gateway and API replicas all register the config's models at start, in
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

    async def listed() -> Any:
        router = await build_inference_router(parse_config(raw), {})
        return router.list_models().data

    models = asyncio.run(listed())
    assert sorted(m.identifier for m in models) == expected
    assert {m.identifier: m.provider_resource_id for m in models} == {
        f"m{i}": f"echo-{i}" for i in range(20)
    }
