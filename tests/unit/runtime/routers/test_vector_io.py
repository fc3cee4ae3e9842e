"""VectorIORouter in one process (`build_local_stack`): the vector_dbs registry, embedding
through the real sentence-transformers model, query modes and parameters, errors, and
restarts. Then the same API over HTTP through the gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.api.vector_io import (
    Chunk,
    InsertChunksRequest,
    QueryChunksRequest,
    RegisterVectorDbRequest,
)
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.routers.vector_io import QueryParams, default_chunk_id, weighted_fusion

EMBEDDING = "all-MiniLM-L6-v2"

DOCS = {
    "cats": "Cats are small domesticated felines that purr and chase mice.",
    "ray": "Ray Serve scales Python model serving across a cluster of machines.",
    "bread": "Sourdough bread rises slowly thanks to wild yeast and lactic bacteria.",
    "rockets": "A rocket engine burns propellant to produce thrust in space.",
    "tea": "Green tea is brewed from unoxidized leaves of the Camellia sinensis plant.",
}


def stack_config(data_dir: Path, vector_dbs: list[dict[str, Any]] | None = None) -> Any:
    return parse_config(
        {
            "version": 2,
            "image_name": "vio",
            "apis": ["inference", "vector_io"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "sentence-transformers",
                        "provider_type": "inline::sentence-transformers",
                        "config": {"num_threads": 2},
                    },
                    {
                        "provider_id": "echo",
                        "provider_type": "remote::echo",
                        "module": "stackray_echo",
                    },
                ],
                "vector_io": [
                    {"provider_id": "faiss", "provider_type": "inline::faiss"},
                    {"provider_id": "sqlite-vec", "provider_type": "inline::sqlite-vec"},
                ],
            },
            "models": [
                {
                    "model_id": EMBEDDING,
                    "provider_id": "sentence-transformers",
                    "provider_model_id": "sentence-transformers/all-MiniLM-L6-v2",
                    "model_type": "embedding",
                },
                {"model_id": "echo-llm", "provider_id": "echo", "model_type": "llm"},
                {"model_id": "echo-embed", "provider_id": "echo", "model_type": "embedding"},
            ],
            "vector_dbs": vector_dbs or [],
            "storage": {"data_dir": str(data_dir)},
        }
    )


class Env:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self.routers = self.run(
            build_local_stack(
                stack_config(
                    data_dir,
                    [{"vector_db_id": "from-config", "embedding_model": EMBEDDING}],
                )
            )
        )
        self.vio = self.routers["vector_io"]
        self.router = self.vio.transport.target  # the router object itself

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Stop the embedding batcher's task, then the loop."""
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def register(self, vector_db_id: str, **kw: Any) -> Any:
        return self.run(
            self.vio.register_vector_db(
                RegisterVectorDbRequest(
                    vector_db_id=vector_db_id, embedding_model=kw.pop("model", EMBEDDING), **kw
                )
            )
        )

    def insert(self, vector_db_id: str, chunks: list[Chunk]) -> None:
        self.run(
            self.vio.insert_chunks(InsertChunksRequest(vector_db_id=vector_db_id, chunks=chunks))
        )

    def query(self, vector_db_id: str, query: str, **params: Any) -> Any:
        return self.run(
            self.vio.query_chunks(
                QueryChunksRequest(vector_db_id=vector_db_id, query=query, params=params or None)
            )
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(tmp_path_factory.mktemp("vio"))
    yield e
    e.close()


def doc_chunks(**extra: Any) -> list[Chunk]:
    return [
        Chunk(content=text, metadata={"document_id": name, "topic": name, **extra})
        for name, text in DOCS.items()
    ]


def topics(response: Any) -> list[str]:
    return [c.metadata["topic"] for c in response.chunks]


def test_register_fills_dimension_and_defaults_to_the_first_provider(env):
    vdb = env.register("reg")
    assert vdb.embedding_dimension == 384
    assert vdb.provider_id == "faiss"
    assert vdb.provider_resource_id == "reg"
    assert env.register("reg") == vdb  # idempotent
    assert env.run(env.vio.get_vector_db("reg")) == vdb
    listed = {v.identifier for v in env.run(env.vio.list_vector_dbs()).data}
    assert {"reg", "from-config"} <= listed
    with pytest.raises(ConflictError):
        env.register("reg", provider_id="sqlite-vec")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "nope"}, "embedding_model"),
        ({"model": "echo-llm"}, "embedding_model"),
        ({"embedding_dimension": 768}, "embedding_dimension"),
        ({"model": "echo-embed"}, "embedding_dimension"),  # no dimension in its metadata
        ({"provider_id": "milvus"}, "provider_id"),
    ],
)
def test_register_errors_name_the_field(env, kwargs, field):
    with pytest.raises(BadRequestError) as e:
        env.register("bad", **kwargs)
    assert e.value.field == field
    with pytest.raises(NotFoundError):
        env.run(env.vio.get_vector_db("bad"))


def test_unknown_vector_db_is_404(env):
    for call in (
        lambda: env.run(env.vio.get_vector_db("missing")),
        lambda: env.run(env.vio.unregister_vector_db("missing")),
        lambda: env.insert("missing", doc_chunks()),
        lambda: env.query("missing", "cats"),
    ):
        with pytest.raises(NotFoundError) as e:
            call()
        assert e.value.field == "vector_db_id" and "missing" in e.value.message


@pytest.mark.parametrize("provider_id", ["faiss", "sqlite-vec"])
def test_insert_embeds_and_every_mode_finds_the_right_chunk(env, provider_id):
    name = f"modes-{provider_id}"
    env.register(name, provider_id=provider_id)
    env.insert(name, doc_chunks())
    r = env.query(name, "which animal purrs?")
    assert topics(r)[0] == "cats" and len(r.chunks) == 3
    assert r.scores == sorted(r.scores, reverse=True) and 0 < r.scores[0] <= 1.0
    assert r.chunks[0].embedding is None
    assert r.chunks[0].metadata["chunk_id"] == default_chunk_id(doc_chunks()[0], DOCS["cats"])
    assert topics(env.query(name, "yeast bread", mode="keyword"))[0] == "bread"
    assert env.query(name, "zyzzyva", mode="keyword").chunks == []
    hybrid = env.query(name, "thrust of a rocket engine", mode="hybrid", max_chunks=2)
    assert topics(hybrid)[0] == "rockets" and len(hybrid.chunks) == 2
    assert hybrid.scores[0] == pytest.approx(2 / 61)  # first in both rankings, k=60
    weighted = env.query(
        name, "tea leaves", mode="hybrid", ranker={"type": "weighted", "alpha": 0.3}
    )
    assert topics(weighted)[0] == "tea" and weighted.scores[0] == pytest.approx(1.0)
    assert topics(env.query(name, "cluster serving", max_chunks=1)) == ["ray"]
    # Re-inserting the same chunks replaces them (same ids): still five.
    env.insert(name, doc_chunks())
    assert len(env.query(name, "anything at all", max_chunks=10, score_threshold=-1).chunks) == 5


def test_filters_and_threshold(env):
    env.register("filters")
    chunks = doc_chunks()
    for i, c in enumerate(chunks):
        c.metadata["even"] = i % 2 == 0
    env.insert("filters", chunks)
    r = env.query("filters", "which animal purrs?", filters={"even": False}, max_chunks=5)
    assert set(topics(r)) == {"ray", "rockets"}
    r = env.query("filters", "which animal purrs?", mode="hybrid", filters={"topic": "tea"})
    assert topics(r) == ["tea"]
    high = env.query("filters", "which animal purrs?", score_threshold=0.4, max_chunks=5)
    assert topics(high) == ["cats"] and all(s >= 0.4 for s in high.scores)


def test_given_embeddings_are_used_and_checked(env):
    env.register("given", provider_id="sqlite-vec")
    vec = [0.0] * 384
    vec[0] = 1.0
    env.insert("given", [Chunk(content="hand made", metadata={"chunk_id": "h"}, embedding=vec)])
    r = env.query("given", "hand made", mode="keyword")
    assert r.chunks[0].metadata["chunk_id"] == "h"
    bad = [
        Chunk(content="ok", metadata={"topic": "fine"}),
        Chunk(content="short", metadata={}, embedding=[0.1, 0.2]),
    ]
    with pytest.raises(BadRequestError) as e:
        env.insert("given", bad)
    assert e.value.field == "chunks[1].embedding" and "384" in e.value.message
    with pytest.raises(BadRequestError) as e:
        env.insert("given", [Chunk(content="fine", metadata={}), Chunk(content="  ", metadata={})])
    assert e.value.field == "chunks[1].content"
    # Nothing of a refused insert was written.
    assert len(env.query("given", "fine ok short", mode="keyword", max_chunks=10).chunks) == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"mode": "fuzzy"}, "params.mode"),
        ({"max_chunks": 0}, "params.max_chunks"),
        ({"max_chunks": "3"}, "params.max_chunks"),
        ({"score_threshold": "high"}, "params.score_threshold"),
        ({"ranker": {"type": "borda"}}, "params.ranker.type"),
        ({"ranker": {"type": "weighted", "alpha": 2}}, "params.ranker.alpha"),
        ({"ranker": {"type": "rrf", "impact_factor": -1}}, "params.ranker.impact_factor"),
        ({"filters": ["a"]}, "params.filters"),
        ({"colour": "red"}, "params.colour"),
    ],
)
def test_bad_query_params_are_400(params, field):
    with pytest.raises(BadRequestError) as e:
        QueryParams.parse(params)
    assert e.value.field == field


def test_empty_query_is_400(env):
    with pytest.raises(BadRequestError) as e:
        env.query("from-config", "   ")
    assert e.value.field == "query"


def test_weighted_fusion_normalizes_each_list():
    fused = dict(weighted_fusion({"a": 0.9, "b": 0.5}, {"b": 10.0, "c": 2.0}, alpha=0.5))
    assert fused == {"a": 0.5, "b": 0.5, "c": 0.0}


def test_unregister_deletes_the_data(env):
    env.register("gone", provider_id="faiss")
    env.insert("gone", doc_chunks())
    env.run(env.vio.unregister_vector_db("gone"))
    with pytest.raises(NotFoundError):
        env.run(env.vio.get_vector_db("gone"))
    env.register("gone", provider_id="faiss")
    assert env.query("gone", "cats", mode="keyword").chunks == []
    assert env.query("gone", "cats", score_threshold=-1).chunks == []


def test_restart_keeps_vector_dbs_and_chunks(tmp_path):
    first = Env(tmp_path)
    first.register("kept", provider_id="sqlite-vec")
    first.register("kept-faiss")
    for name in ("kept", "kept-faiss", "from-config"):
        first.insert(name, doc_chunks())
    before = {n: first.query(n, "bread and yeast") for n in ("kept", "kept-faiss", "from-config")}
    first.run(first.router.providers["faiss"].shutdown())
    first.close()

    second = Env(tmp_path)
    assert {v.identifier for v in second.run(second.vio.list_vector_dbs()).data} == {
        "kept",
        "kept-faiss",
        "from-config",
    }
    for name, response in before.items():
        again = second.query(name, "bread and yeast")
        assert topics(again) == topics(response)
        assert again.scores == pytest.approx(response.scores, abs=1e-5)
    second.close()


# ---- over HTTP -------------------------------------------------------------------------


@pytest.fixture()
def client(tmp_path):
    stack = parse_config(
        {
            "version": 2,
            "image_name": "gw",
            "apis": ["inference", "vector_io"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "echo",
                        "provider_type": "remote::echo",
                        "module": "stackray_echo",
                    }
                ],
                "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
            },
            "models": [
                {
                    "model_id": "emb",
                    "provider_id": "echo",
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 8},
                }
            ],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as c:
        yield c


def test_http_round_trip(client):
    r = client.post("/v1/vector-dbs", json={"vector_db_id": "web", "embedding_model": "emb"})
    assert r.status_code == 200
    assert r.json() == {
        "identifier": "web",
        "provider_resource_id": "web",
        "provider_id": "faiss",
        "type": "vector_db",
        "embedding_model": "emb",
        "embedding_dimension": 8,
    }
    assert [v["identifier"] for v in client.get("/v1/vector-dbs").json()["data"]] == ["web"]
    assert client.get("/v1/vector-dbs/web").json()["identifier"] == "web"
    chunks = [
        {"content": "alpha beta", "metadata": {"document_id": "d1"}},
        {"content": [{"type": "text", "text": "gamma delta"}], "metadata": {"document_id": "d2"}},
    ]
    r = client.post("/v1/vector-io/insert", json={"vector_db_id": "web", "chunks": chunks})
    assert r.status_code == 200 and r.json() is None
    r = client.post(
        "/v1/vector-io/query",
        json={"vector_db_id": "web", "query": "gamma", "params": {"mode": "keyword"}},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["chunks"][0]["content"] == [{"type": "text", "text": "gamma delta"}]
    assert body["chunks"][0]["metadata"]["document_id"] == "d2"
    assert "embedding" not in body["chunks"][0] and len(body["scores"]) == 1
    r = client.post("/v1/vector-io/query", json={"vector_db_id": "web", "query": "alpha beta"})
    assert r.status_code == 200 and len(r.json()["chunks"]) == 2

    assert client.delete("/v1/vector-dbs/web").status_code == 200
    assert client.get("/v1/vector-dbs").json() == {"data": []}


def test_http_errors(client):
    r = client.get("/v1/vector-dbs/nope")
    assert r.status_code == 404 and "nope" in r.text
    r = client.post("/v1/vector-io/query", json={"vector_db_id": "nope", "query": "x"})
    assert r.status_code == 404
    r = client.post("/v1/vector-dbs", json={"vector_db_id": "x", "embedding_model": "missing"})
    assert r.status_code == 400 and "embedding_model" in r.text
    client.post("/v1/vector-dbs", json={"vector_db_id": "x", "embedding_model": "emb"})
    r = client.post(
        "/v1/vector-io/insert",
        json={
            "vector_db_id": "x",
            "chunks": [{"content": "a", "metadata": {}, "embedding": [1.0]}],
        },
    )
    assert r.status_code == 400 and "chunks[0].embedding" in r.text
    r = client.post(
        "/v1/vector-io/query",
        json={"vector_db_id": "x", "query": "a", "params": {"mode": "semantic"}},
    )
    assert r.status_code == 400 and "params.mode" in r.text
    r = client.post(
        "/v1/vector-io/insert", json={"vector_db_id": "x", "chunks": [{"content": "a", "bogus": 1}]}
    )
    assert r.status_code == 400


def test_vector_io_needs_the_inference_api(tmp_path):
    from stackray.api.errors import ConfigError

    with pytest.raises(ConfigError, match="inference"):
        stack = parse_config(
            {
                "version": 2,
                "image_name": "alone",
                "apis": ["vector_io"],
                "providers": {
                    "vector_io": [{"provider_id": "f", "provider_type": "inline::faiss"}]
                },
                "storage": {"data_dir": str(tmp_path)},
            }
        )
        asyncio.run(build_local_stack(stack))
