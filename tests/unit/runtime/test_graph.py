"""The composition graph in one process (`build_local_stack`) with a recording transport
on every edge between deployments: the hop budget of each request path, counted.

The budget, from the gateway to the process doing the work: chat and embeddings one hop
(gateway -> model server; none for a remote provider), a vector query at most two deep
(gateway -> vector-io -> index owner / embedding server), an agent turn with one server
tool at most six handle calls. A path that grows fails here.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackray.api.datatypes import Api
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.calls import LocalTransport
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack, stack_graph
from stackray.runtime.request_context import RequestContext
from tests.unit.support.search_servers import KEY

_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("hop_depth", default=0)


@dataclass
class Recorder:
    """Every call that crosses an edge: (depth, callee deployment, method)."""

    calls: list[tuple[int, str, str]] = field(default_factory=list)

    def transport(self, target: Any, name: str) -> RecordingTransport:
        return RecordingTransport(self, target, name)

    def take(self) -> list[tuple[int, str, str]]:
        calls, self.calls = self.calls, []
        return calls


class RecordingTransport(LocalTransport):
    def __init__(self, recorder: Recorder, target: Any, name: str) -> None:
        super().__init__(target, name)
        self.recorder = recorder

    async def call(self, method: str, *args: Any, ctx: RequestContext | None = None) -> Any:
        depth = _DEPTH.get() + 1
        self.recorder.calls.append((depth, str(self.name), method))
        token = _DEPTH.set(depth)
        try:
            return await super().call(method, *args, ctx=ctx)
        finally:
            _DEPTH.reset(token)

    async def stream(  # type: ignore[override]
        self, method: str, *args: Any, ctx: RequestContext | None = None
    ) -> AsyncIterator[Any]:
        depth = _DEPTH.get() + 1
        self.recorder.calls.append((depth, str(self.name), method))
        iterator = super().stream(method, *args, ctx=ctx).__aiter__()
        while True:
            token = _DEPTH.set(depth)
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _DEPTH.reset(token)
            yield item


def config(tmp_path: Any, search_url: str) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "hops",
        "apis": ["inference", "vector_io", "tool_runtime", "agents"],
        "providers": {
            "inference": [
                {
                    "provider_id": "scripted",
                    "provider_type": "inline::scripted-local",
                    "module": "tests.unit.support.scripted_local_model",
                },
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"},
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
            "tool_runtime": [
                {
                    "provider_id": "tavily",
                    "provider_type": "remote::tavily-search",
                    "config": {"base_url": search_url, "api_key": KEY},
                }
            ],
            "agents": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference"}
            ],
        },
        "models": [
            {"model_id": "local-llm", "provider_id": "scripted", "model_type": "llm"},
            {
                "model_id": "local-embed",
                "provider_id": "scripted",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 8},
            },
            {"model_id": "remote-llm", "provider_id": "echo", "model_type": "llm"},
        ],
        "vector_dbs": [
            {"vector_db_id": "docs", "embedding_model": "local-embed", "embedding_dimension": 8}
        ],
        "tool_groups": [{"toolgroup_id": "builtin::websearch", "provider_id": "tavily"}],
        "storage": {"data_dir": str(tmp_path)},
    }


@pytest.fixture()
def hops(tmp_path, search_server) -> Iterator[tuple[TestClient, Recorder]]:
    stack = parse_config(config(tmp_path, search_server.url))
    recorder = Recorder()
    clients = asyncio.run(build_local_stack(stack, transport=recorder.transport))
    with TestClient(create_gateway_app(stack, clients)) as client:
        recorder.take()  # start-up calls
        yield client, recorder


def test_the_graph_names_deployments_after_what_they_hold(tmp_path):
    graph = stack_graph(parse_config(config(tmp_path, "http://127.0.0.1:9")))
    assert [p.name for p in graph.providers] == ["model-scripted", "index-faiss"]
    assert [n.name for n in graph.apis] == ["vector-io", "tool-runtime", "agents"]
    # No inference deployment: the gateway and the deployments calling inference build
    # its router over the model servers.
    assert graph.gateway.inference and graph.gateway.servers == ("scripted",)
    agents = next(n for n in graph.apis if n.name == "agents")
    assert agents.inference and agents.servers == ("scripted",)
    assert set(agents.calls) == {Api.tool_runtime, Api.vector_io}


def chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {
        "model_id": model,
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": stream,
    }


def test_chat_and_embeddings_are_one_hop(hops):
    client, recorder = hops
    r = client.post("/v1/inference/chat-completion", json=chat("local-llm"))
    assert r.status_code == 200, r.text
    assert recorder.take() == [(1, "model-scripted", "chat_completion")]

    with client.stream(
        "POST", "/v1/inference/chat-completion", json=chat("local-llm", stream=True)
    ) as r:
        assert r.status_code == 200 and "hello" in r.read().decode()
    assert recorder.take() == [(1, "model-scripted", "chat_completion_stream")]

    r = client.post(
        "/v1/openai/v1/chat/completions",
        json={"model": "local-llm", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert recorder.take() == [(1, "model-scripted", "openai_chat_completion")]

    r = client.post(
        "/v1/inference/embeddings", json={"model_id": "local-embed", "contents": ["a", "b"]}
    )
    assert r.status_code == 200 and len(r.json()["embeddings"]) == 2
    assert recorder.take() == [(1, "model-scripted", "embeddings")]


def test_a_remote_provider_is_called_in_the_gateways_process(hops):
    client, recorder = hops
    r = client.post("/v1/inference/chat-completion", json=chat("remote-llm"))
    assert r.status_code == 200 and r.json()["completion_message"]["content"] == "echo: hello there"
    assert recorder.take() == []


def test_a_vector_query_is_two_deep(hops):
    client, recorder = hops
    r = client.post(
        "/v1/vector-io/insert",
        json={
            "vector_db_id": "docs",
            "chunks": [
                {"content": "Ray Serve scales model serving.", "metadata": {"document_id": "a"}},
                {"content": "Sourdough rises slowly.", "metadata": {"document_id": "b"}},
            ],
        },
    )
    assert r.status_code == 200, r.text
    recorder.take()
    r = client.post("/v1/vector-io/query", json={"vector_db_id": "docs", "query": "serving"})
    assert r.status_code == 200 and r.json()["chunks"]
    calls = recorder.take()
    assert calls == [
        (1, "vector-io", "query_chunks"),
        (2, "model-scripted", "embeddings"),
        (2, "index-faiss", "query_vector"),
    ]


def test_an_agent_turn_with_one_server_tool(hops, search_server):
    client, recorder = hops
    agent = client.post(
        "/v1/agents",
        json={
            "agent_config": {
                "model": "local-llm",
                "instructions": "Use the tools.",
                "toolgroups": ["builtin::websearch"],
            }
        },
    )
    assert agent.status_code == 200, agent.text
    agent_id = agent.json()["agent_id"]
    session = client.post(f"/v1/agents/{agent_id}/session", json={"session_name": "s"})
    session_id = session.json()["session_id"]
    recorder.take()
    turn = client.post(
        f"/v1/agents/{agent_id}/session/{session_id}/turn",
        json={"messages": [{"role": "user", "content": "ray serve"}], "stream": False},
    )
    assert turn.status_code == 200, turn.text
    steps = [s["step_type"] for s in turn.json()["steps"]]
    assert steps == ["inference", "tool_execution", "inference"]
    calls = recorder.take()
    assert len(calls) <= 6, calls
    assert calls == [
        (1, "agents", "create_agent_turn"),
        (2, "tool-runtime", "list_runtime_tools"),
        (2, "model-scripted", "chat_completion_stream"),
        (2, "tool-runtime", "invoke_tool"),
        (2, "model-scripted", "chat_completion_stream"),
    ]
