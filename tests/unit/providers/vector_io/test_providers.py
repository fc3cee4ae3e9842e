"""Conformance of every vector IO provider built here to `VectorIOProvider`: the same
tests against faiss (flat, hnsw, ivf), sqlite-vec and pgvector (a real PostgreSQL with
pgvector from pgserver)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stackray.api.datatypes import Api
from stackray.api.vector_io import Chunk, VectorDB
from stackray.runtime.config import Provider, parse_config
from stackray.runtime.resolver import instantiate_provider

DIM = 8
PROVIDERS = ["faiss", "faiss-hnsw", "faiss-ivf", "sqlite-vec", "pgvector"]


def provider_entry(name: str, tmp: Path, postgres: Any) -> dict[str, Any]:
    if name == "faiss":
        return {"provider_id": name, "provider_type": "inline::faiss"}
    if name == "faiss-hnsw":
        return {
            "provider_id": name,
            "provider_type": "inline::faiss",
            "config": {"index_type": "hnsw", "hnsw_m": 8, "snapshot_min_vectors": 5},
        }
    if name == "faiss-ivf":
        return {
            "provider_id": name,
            "provider_type": "inline::faiss",
            "config": {"index_type": "ivf", "ivf_nlist": 2, "ivf_nprobe": 2, "ivf_train_size": 4},
        }
    if name == "sqlite-vec":
        return {"provider_id": name, "provider_type": "inline::sqlite-vec"}
    assert name == "pgvector"
    cfg = {k: getattr(postgres, k) for k in ("host", "port", "db", "user", "password")}
    return {"provider_id": name, "provider_type": "remote::pgvector", "config": cfg}


class Harness:
    """Builds (and re-builds, for restarts) one provider over one data dir."""

    def __init__(self, name: str, tmp: Path, postgres: Any) -> None:
        self.name = name
        self.entry = provider_entry(name, tmp, postgres)
        self.stack = parse_config(
            {
                "version": 2,
                "image_name": "vio",
                "apis": ["vector_io", "inference"],
                "providers": {"vector_io": [self.entry]},
                "storage": {"data_dir": str(tmp)},
            }
        )
        self.loop = asyncio.new_event_loop()
        self.impl: Any = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def start(self) -> Any:
        self.impl = self.run(
            instantiate_provider(Api.vector_io, Provider(**self.entry), self.stack)
        )
        return self.impl

    def stop(self) -> None:
        if self.impl is not None:
            self.run(self.impl.shutdown())
            self.impl = None

    def restart(self) -> Any:
        self.stop()
        return self.start()


@pytest.fixture(params=PROVIDERS)
def harness(request, tmp_path):
    postgres = request.getfixturevalue("postgres_config") if request.param == "pgvector" else None
    h = Harness(request.param, tmp_path, postgres)
    h.start()
    yield h
    # Leave no tables behind on the shared PostgreSQL.
    for vdb in ("docs", "other"):
        if h.impl is not None:
            h.run(h.impl.unregister_vector_db(f"{vdb}-{id(h)}"))
    h.stop()
    h.loop.close()


def unit(*values: float) -> list[float]:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return (v / np.linalg.norm(v)).tolist()


def chunk(cid: str, text: str, embedding: list[float], **metadata: Any) -> Chunk:
    return Chunk(
        content=text,
        metadata={"chunk_id": cid, "document_id": cid[0], **metadata},
        embedding=embedding,
    )


CORPUS = [
    chunk("a1", "Ray Serve deploys Python models behind HTTP", unit(1, 0), lang="en", year=2024),
    chunk("a2", "FAISS searches dense vectors quickly", unit(1, 0.2), lang="en", year=2023),
    chunk(
        "b1", "PostgreSQL stores rows and pgvector adds vectors", unit(0, 1), lang="de", year=2024
    ),
    chunk("b2", "SQLite is a small embedded database", unit(0.2, 1), lang="de", final=True),
    chunk("c1", "Bananas are yellow fruit", unit(0, 0, 1), lang="en", tags=["x", "y"]),
]


def vdb(h: Harness, name: str = "docs") -> VectorDB:
    return VectorDB(
        identifier=f"{name}-{id(h)}",
        provider_resource_id=f"{name}-{id(h)}",
        provider_id=h.name,
        embedding_model="m",
        embedding_dimension=DIM,
    )


def ids(hits: list[Any]) -> list[str]:
    return [h.chunk.metadata["chunk_id"] for h in hits]


def loaded(h: Harness, name: str = "docs") -> VectorDB:
    db = vdb(h, name)
    h.run(h.impl.register_vector_db(db))
    h.run(h.impl.register_vector_db(db))  # idempotent
    h.run(h.impl.insert_chunks(db, CORPUS))
    return db


def test_vector_query_ranks_by_cosine(harness):
    db = loaded(harness)
    hits = harness.run(harness.impl.query_vector(db, unit(1, 0.05), 3, -1.0))
    assert ids(hits) == ["a1", "a2", "b2"]
    assert hits[0].score == pytest.approx(float(np.dot(unit(1, 0.05), unit(1, 0))), abs=1e-4)
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].chunk.content == "Ray Serve deploys Python models behind HTTP"
    assert hits[0].chunk.metadata["year"] == 2024
    assert hits[0].chunk.embedding is None


def test_score_threshold(harness):
    db = loaded(harness)
    hits = harness.run(harness.impl.query_vector(db, unit(1, 0), 5, 0.9))
    assert ids(hits) == ["a1", "a2"]
    assert all(h.score >= 0.9 for h in hits)


def test_keyword_query(harness):
    db = loaded(harness)
    hits = harness.run(harness.impl.query_keyword(db, "vectors database", 5, 0.0))
    found = ids(hits)
    assert set(found) == {"a2", "b1", "b2"}
    assert all(h.score > 0 for h in hits)
    assert harness.run(harness.impl.query_keyword(db, "zebra", 5, 0.0)) == []
    assert ids(harness.run(harness.impl.query_keyword(db, "bananas", 5, 0.0))) == ["c1"]


def test_filters(harness):
    db = loaded(harness)
    hits = harness.run(harness.impl.query_vector(db, unit(1, 0), 5, -1.0, {"lang": "de"}))
    assert set(ids(hits)) == {"b1", "b2"}
    assert ids(harness.run(harness.impl.query_vector(db, unit(1, 0), 5, -1.0, {"year": 2024}))) == [
        "a1",
        "b1",
    ]
    both = {"lang": "en", "year": 2023}
    assert ids(harness.run(harness.impl.query_vector(db, unit(0, 1), 5, -1.0, both))) == ["a2"]
    assert ids(harness.run(harness.impl.query_vector(db, unit(1), 5, -1.0, {"final": True}))) == [
        "b2"
    ]
    assert harness.run(harness.impl.query_vector(db, unit(1), 5, -1.0, {"lang": "fr"})) == []
    assert ids(
        harness.run(harness.impl.query_keyword(db, "vectors database", 5, 0.0, {"lang": "en"}))
    ) == ["a2"]


def test_replace_by_chunk_id_and_delete(harness):
    db = loaded(harness)
    moved = chunk("a1", "Ray Serve now points elsewhere", unit(0, 0, 0, 1), lang="en")
    harness.run(harness.impl.insert_chunks(db, [moved]))
    hits = harness.run(harness.impl.query_vector(db, unit(0, 0, 0, 1), 1, -1.0))
    assert ids(hits) == ["a1"] and hits[0].chunk.content == "Ray Serve now points elsewhere"
    assert "a1" not in ids(harness.run(harness.impl.query_vector(db, unit(1, 0), 2, -1.0)))
    assert len(harness.run(harness.impl.query_vector(db, unit(1, 0), 10, -1.0))) == 5
    assert "a1" not in ids(harness.run(harness.impl.query_keyword(db, "deploys", 5, 0.0)))

    harness.run(harness.impl.delete_chunks(db, ["a2", "nope"]))
    remaining = ids(harness.run(harness.impl.query_vector(db, unit(1, 0), 10, -1.0)))
    assert sorted(remaining) == ["a1", "b1", "b2", "c1"]
    assert harness.run(harness.impl.query_keyword(db, "faiss", 5, 0.0)) == []


def test_vector_dbs_are_separate_and_unregister_deletes(harness):
    db = loaded(harness)
    other = vdb(harness, "other")
    harness.run(harness.impl.register_vector_db(other))
    harness.run(harness.impl.insert_chunks(other, [chunk("z1", "only here", unit(1, 0))]))
    assert ids(harness.run(harness.impl.query_vector(other, unit(1, 0), 10, -1.0))) == ["z1"]
    assert len(harness.run(harness.impl.query_vector(db, unit(1, 0), 10, -1.0))) == 5

    harness.run(harness.impl.unregister_vector_db(db.identifier))
    harness.run(harness.impl.unregister_vector_db(db.identifier))  # no error when gone
    harness.run(harness.impl.register_vector_db(db))
    assert harness.run(harness.impl.query_vector(db, unit(1, 0), 10, -1.0)) == []
    assert harness.run(harness.impl.query_keyword(db, "vectors", 10, 0.0)) == []
    assert ids(harness.run(harness.impl.query_vector(other, unit(1, 0), 10, -1.0))) == ["z1"]


def test_persistence_across_a_recreated_provider(harness):
    db = loaded(harness)
    harness.run(harness.impl.insert_chunks(db, [chunk("a1", "replaced", unit(0, 0, 0, 1))]))
    harness.run(harness.impl.delete_chunks(db, ["c1"]))
    before_v = harness.run(harness.impl.query_vector(db, unit(1, 0.3), 10, -1.0))
    before_k = harness.run(harness.impl.query_keyword(db, "vectors database replaced", 10, 0.0))
    harness.restart()
    after_v = harness.run(harness.impl.query_vector(db, unit(1, 0.3), 10, -1.0))
    after_k = harness.run(harness.impl.query_keyword(db, "vectors database replaced", 10, 0.0))
    assert ids(after_v) == ids(before_v) and len(after_v) == 4
    assert [h.score for h in after_v] == pytest.approx([h.score for h in before_v], abs=1e-5)
    assert ids(after_k) == ids(before_k)
    # And it keeps working: inserts after the restart.
    harness.run(harness.impl.insert_chunks(db, [chunk("d1", "fresh", unit(1, 0.3))]))
    assert ids(harness.run(harness.impl.query_vector(db, unit(1, 0.3), 1, -1.0))) == ["d1"]


def test_many_chunks_in_batches(harness):
    """Inserts in batches, replacements, a restart in the middle: results equal exact search."""
    db = vdb(harness)
    harness.run(harness.impl.register_vector_db(db))
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(
            content=f"item {i} group{i % 3}",
            metadata={"chunk_id": f"c{i}", "group": i % 3},
            embedding=vectors[i].tolist(),
        )
        for i in range(300)
    ]
    for start in range(0, 300, 50):
        harness.run(harness.impl.insert_chunks(db, chunks[start : start + 50]))
        if start == 150:
            harness.restart()
    q = rng.normal(size=DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    exact = [f"c{i}" for i in np.argsort(-(vectors @ q))[:10]]
    got = ids(harness.run(harness.impl.query_vector(db, q.tolist(), 10, -1.0)))
    assert len(set(got) & set(exact)) >= 9
    in_group = [f"c{i}" for i in np.argsort(-(vectors @ q)) if i % 3 == 1][:5]
    got = ids(harness.run(harness.impl.query_vector(db, q.tolist(), 5, -1.0, {"group": 1})))
    assert len(set(got) & set(in_group)) >= 4
    assert all(int(c[1:]) % 3 == 1 for c in got)


def test_sqlite_vec_replicas_on_one_machine_share_the_file(tmp_path):
    """Two `vector_io` replicas on one machine each open the same SQLite file."""
    first, second = Harness("sqlite-vec", tmp_path, None), Harness("sqlite-vec", tmp_path, None)
    first.start()
    second.start()
    db = vdb(first)
    first.run(first.impl.register_vector_db(db))
    first.run(first.impl.insert_chunks(db, CORPUS))
    assert ids(second.run(second.impl.query_vector(db, unit(1, 0.05), 2, -1.0))) == ["a1", "a2"]
    second.run(second.impl.delete_chunks(db, ["a1"]))
    assert ids(first.run(first.impl.query_vector(db, unit(1, 0.05), 1, -1.0))) == ["a2"]
    for h in (first, second):
        h.stop()
        h.loop.close()
