"""A stack from a run config in the forms of Llama Stack 0.2.12's remote-vllm template
(written for this test: its variables, faiss `kvstore`, agents `persistence_store` and
`responses_store`, telemetry sinks from a variable, registry and inference stores under
`SQLITE_STORE_DIR`), built in one process and driven over HTTP with `llama-stack-client`:
chat through remote::vllm (the OpenAI stand-in), RAG with the real embedding model, an
agent. Each store's data is where the config says."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.remote_servers import FakeService

STORE = "${env.SQLITE_STORE_DIR:~/.llama/distributions/remote-vllm}"

RUN_YAML: dict[str, Any] = {
    "version": "2",
    "image_name": "remote-vllm",
    "apis": ["agents", "inference", "telemetry", "tool_runtime", "vector_io"],
    "providers": {
        "inference": [
            {
                "provider_id": "vllm-inference",
                "provider_type": "remote::vllm",
                "config": {
                    "url": "${env.VLLM_URL:http://localhost:8000/v1}",
                    "max_tokens": "${env.VLLM_MAX_TOKENS:4096}",
                    "api_token": "${env.VLLM_API_TOKEN:fake}",
                    "tls_verify": "${env.VLLM_TLS_VERIFY:true}",
                },
            },
            {
                "provider_id": "sentence-transformers",
                "provider_type": "inline::sentence-transformers",
                "config": {},
            },
        ],
        "vector_io": [
            {
                "provider_id": "faiss",
                "provider_type": "inline::faiss",
                "config": {
                    "kvstore": {
                        "type": "sqlite",
                        "namespace": None,
                        "db_path": f"{STORE}/faiss_store.db",
                    }
                },
            },
            {
                "provider_id": "${env.ENABLE_CHROMADB+chromadb}",
                "provider_type": "remote::chromadb",
                "config": {"url": "${env.CHROMADB_URL:}"},
            },
        ],
        "agents": [
            {
                "provider_id": "meta-reference",
                "provider_type": "inline::meta-reference",
                "config": {
                    "persistence_store": {
                        "type": "sqlite",
                        "namespace": None,
                        "db_path": f"{STORE}/agents_store.db",
                    },
                    "responses_store": {"type": "sqlite", "db_path": f"{STORE}/responses_store.db"},
                },
            }
        ],
        "telemetry": [
            {
                "provider_id": "meta-reference",
                "provider_type": "inline::meta-reference",
                "config": {
                    "service_name": "${env.OTEL_SERVICE_NAME:\u200b}",
                    "sinks": "${env.TELEMETRY_SINKS:console,sqlite}",
                    "sqlite_db_path": f"{STORE}/trace_store.db",
                },
            }
        ],
        "tool_runtime": [
            {
                "provider_id": "tavily-search",
                "provider_type": "remote::tavily-search",
                "config": {"api_key": "${env.TAVILY_SEARCH_API_KEY:}", "max_results": 3},
            },
            {"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime", "config": {}},
        ],
    },
    "metadata_store": {"type": "sqlite", "db_path": f"{STORE}/registry.db"},
    "inference_store": {"type": "sqlite", "db_path": f"{STORE}/inference_store.db"},
    "models": [
        {
            "metadata": {},
            "model_id": "${env.INFERENCE_MODEL}",
            "provider_id": "vllm-inference",
            "model_type": "llm",
        },
        {
            "metadata": {"embedding_dimension": 384},
            "model_id": "all-MiniLM-L6-v2",
            "provider_id": "sentence-transformers",
            "model_type": "embedding",
        },
    ],
    "shields": [],
    "vector_dbs": [],
    "datasets": [],
    "scoring_fns": [],
    "benchmarks": [],
    "tool_groups": [
        {"toolgroup_id": "builtin::websearch", "provider_id": "tavily-search"},
        {"toolgroup_id": "builtin::rag", "provider_id": "rag-runtime"},
    ],
    "server": {"port": 8321},
}


@pytest.fixture(scope="module")
def served(
    _openai_service: FakeService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    store = tmp_path_factory.mktemp("sqlite-store")
    env = {
        "SQLITE_STORE_DIR": str(store),
        "VLLM_URL": f"{_openai_service.url}/v1",
        "INFERENCE_MODEL": "served-model",
        "TELEMETRY_SINKS": "sqlite",
    }
    stack = parse_config(RUN_YAML, "remote-vllm-form.yaml", env=env)
    routers = asyncio.run(build_local_stack(stack))
    app = create_gateway_app(stack, routers)
    service = FakeService(lambda _svc: app).start()
    yield service.url, store
    service.stop()


def client(url: str) -> Any:
    from llama_stack_client import LlamaStackClient

    return LlamaStackClient(base_url=url, max_retries=0, timeout=60)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_chat_and_the_registry_where_the_config_says(served):
    url, store = served
    c = client(url)
    assert {m.identifier for m in c.models.list()} == {"served-model", "all-MiniLM-L6-v2"}
    answer = c.inference.chat_completion(
        model_id="served-model", messages=[{"role": "user", "content": "hello"}]
    )
    assert answer.completion_message.content == "echo: hello"
    assert {p.provider_id for p in c.providers.list()} >= {"vllm-inference", "faiss"}
    assert "chromadb" not in {p.provider_id for p in c.providers.list()}
    assert (store / "registry.db").is_file() and (store / "inference_store.db").is_file()


def test_rag_puts_the_chunks_in_the_faiss_kvstore(served):
    url, store = served
    c = client(url)
    c.vector_dbs.register(
        vector_db_id="notes", embedding_model="all-MiniLM-L6-v2", provider_id="faiss"
    )
    c.tool_runtime.rag_tool.insert(
        vector_db_id="notes",
        chunk_size_in_tokens=64,
        documents=[
            {
                "document_id": "tea",
                "content": "Green tea comes from Camellia sinensis.",
                "metadata": {},
            },
            {"document_id": "ray", "content": "Ray Serve scales model serving.", "metadata": {}},
        ],
    )
    result = c.tool_runtime.rag_tool.query(
        content="what is green tea made from?", vector_db_ids=["notes"]
    )
    assert "Camellia sinensis" in "".join(item.text for item in result.content)
    with sqlite3.connect(store / "faiss_store.db") as conn:
        assert conn.execute("SELECT count(*) FROM chunks WHERE db = 'notes'").fetchone()[0] == 2


def test_an_agent_is_kept_in_the_persistence_store(served):
    url, store = served
    c = client(url)
    agent = c.agents.create(agent_config={"model": "served-model", "instructions": "Be brief."})
    c.agents.session.create(agent.agent_id, session_name="s")
    assert {"agents", "agent_sessions"} <= tables(store / "agents_store.db")
    with sqlite3.connect(store / "agents_store.db") as conn:
        assert conn.execute("SELECT count(*) FROM agents").fetchone()[0] == 1
    assert "openai_responses" in tables(store / "responses_store.db")
