"""Vector IO through the real `llama-stack-client` against the shared Serve stack:
vector dbs on faiss (its own deployment) and sqlite-vec, embedding through the
sentence-transformers model server, every query mode, errors, and two vector_io replicas
seeing the same data."""

from __future__ import annotations

import pytest
from llama_stack_client import BadRequestError, NotFoundError

from .conftest import EMBEDDING_MODEL

DOCS = {
    "cats": "Cats are small domesticated felines that purr and chase mice.",
    "ray": "Ray Serve scales Python model serving across a cluster of machines.",
    "bread": "Sourdough bread rises slowly thanks to wild yeast and lactic bacteria.",
    "rockets": "A rocket engine burns propellant to produce thrust in space.",
}


def topics(response) -> list[str]:
    return [c.metadata["topic"] for c in response.chunks]


@pytest.mark.parametrize("provider_id", ["faiss", "sqlite-vec"])
def test_register_insert_query_unregister(stack, provider_id):
    client = stack.client()
    name = f"it-{provider_id}"
    vdb = client.vector_dbs.register(
        vector_db_id=name, embedding_model=EMBEDDING_MODEL, provider_id=provider_id
    )
    assert vdb.identifier == name and vdb.provider_id == provider_id
    assert vdb.embedding_dimension == 384
    assert name in {v.identifier for v in client.vector_dbs.list()}
    assert client.vector_dbs.retrieve(name).embedding_model == EMBEDDING_MODEL

    client.vector_io.insert(
        vector_db_id=name,
        chunks=[
            {"content": text, "metadata": {"document_id": topic, "topic": topic, "n": i}}
            for i, (topic, text) in enumerate(DOCS.items())
        ],
    )
    # Two replicas of the vector_io deployment serve these in turn: all see the chunks.
    for _ in range(4):
        r = client.vector_io.query(vector_db_id=name, query="which animal purrs?")
        assert topics(r)[0] == "cats" and len(r.chunks) == 3
        assert r.scores == sorted(r.scores, reverse=True)

    r = client.vector_io.query(
        vector_db_id=name, query="wild yeast", params={"mode": "keyword", "max_chunks": 5}
    )
    assert topics(r) == ["bread"]
    r = client.vector_io.query(
        vector_db_id=name, query="rocket thrust", params={"mode": "hybrid", "max_chunks": 2}
    )
    assert topics(r)[0] == "rockets"
    assert r.scores[0] == pytest.approx(2 / 61)
    r = client.vector_io.query(
        vector_db_id=name,
        query="serving models",
        params={"mode": "hybrid", "ranker": {"type": "weighted", "alpha": 0.7}},
    )
    assert topics(r)[0] == "ray"
    r = client.vector_io.query(
        vector_db_id=name,
        query="which animal purrs?",
        params={"filters": {"topic": "bread"}, "max_chunks": 4},
    )
    assert topics(r) == ["bread"]

    client.vector_dbs.unregister(name)
    assert name not in {v.identifier for v in client.vector_dbs.list()}
    with pytest.raises(NotFoundError):
        client.vector_dbs.retrieve(name)
    # Registering it again starts empty: unregister deleted the provider's data.
    client.vector_dbs.register(
        vector_db_id=name, embedding_model=EMBEDDING_MODEL, provider_id=provider_id
    )
    r = client.vector_io.query(vector_db_id=name, query="bread", params={"mode": "keyword"})
    assert r.chunks == []
    client.vector_dbs.unregister(name)


def test_errors(stack):
    client = stack.client()
    with pytest.raises(NotFoundError, match="nope"):
        client.vector_dbs.retrieve("nope")
    with pytest.raises(NotFoundError):
        client.vector_io.query(vector_db_id="nope", query="x")
    with pytest.raises(NotFoundError):
        client.vector_dbs.unregister("nope")
    with pytest.raises(BadRequestError, match="embedding_model"):
        client.vector_dbs.register(vector_db_id="bad", embedding_model="no-such-model")
    with pytest.raises(BadRequestError, match="embedding_dimension"):
        client.vector_dbs.register(
            vector_db_id="bad", embedding_model=EMBEDDING_MODEL, embedding_dimension=768
        )
    client.vector_dbs.register(vector_db_id="it-errors", embedding_model=EMBEDDING_MODEL)
    with pytest.raises(BadRequestError, match=r"chunks\[0\].embedding"):
        client.vector_io.insert(
            vector_db_id="it-errors",
            chunks=[{"content": "x", "metadata": {}, "embedding": [0.1, 0.2]}],
        )
    with pytest.raises(BadRequestError, match="params.mode"):
        client.vector_io.query(vector_db_id="it-errors", query="x", params={"mode": "fuzzy"})
    with pytest.raises(BadRequestError, match="query"):
        client.vector_io.query(vector_db_id="it-errors", query=" ")
    client.vector_dbs.unregister("it-errors")
