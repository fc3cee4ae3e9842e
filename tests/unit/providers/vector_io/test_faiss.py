"""inline::faiss beyond the conformance suite: the over-fetch search path that GPU indexes
use, compaction of dead positions, snapshots plus replay on load, IVF training, and the
provider behind a proxy as in its own deployment."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stackray.api.datatypes import Api
from stackray.api.vector_io import Chunk, VectorDB
from stackray.providers.inline.vector_io.faiss import impl as faiss_impl
from stackray.providers.inline.vector_io.faiss.config import FaissVectorIOConfig
from stackray.providers.inline.vector_io.faiss.impl import FaissVectorIOProvider

DIM = 16


class Context:
    provider_id = "faiss"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir


def make(tmp: Path, **config: Any) -> FaissVectorIOProvider:
    provider = FaissVectorIOProvider(FaissVectorIOConfig(**config), {}, Context(tmp))
    asyncio.run(provider.initialize())
    return provider


VDB = VectorDB(
    identifier="v",
    provider_resource_id="v",
    provider_id="faiss",
    embedding_model="m",
    embedding_dimension=DIM,
)


def data(n: int, seed: int = 0) -> tuple[np.ndarray, list[Chunk]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(
            content=f"text {i}",
            metadata={"chunk_id": f"c{i}", "parity": i % 2},
            embedding=vectors[i].tolist(),
        )
        for i in range(n)
    ]
    return vectors, chunks


def top(provider: FaissVectorIOProvider, q: np.ndarray, k: int, filters: Any = None) -> list[str]:
    hits = asyncio.run(provider.query_vector(VDB, q.tolist(), k, -1.0, filters))
    return [h.chunk.metadata["chunk_id"] for h in hits]


def exact(vectors: np.ndarray, q: np.ndarray, k: int, keep: Any = None) -> list[str]:
    order = [int(i) for i in np.argsort(-(vectors @ q))]
    return [f"c{i}" for i in order if keep is None or keep(i)][:k]


def test_overfetch_path_matches_selectors(tmp_path):
    """GPU indexes take no ID selectors; the over-fetch path must give the same hits."""
    provider = make(tmp_path)
    vectors, chunks = data(400)
    asyncio.run(provider.register_vector_db(VDB))
    asyncio.run(provider.insert_chunks(VDB, chunks))
    asyncio.run(provider.delete_chunks(VDB, [f"c{i}" for i in range(0, 400, 3)]))
    q = vectors[5]
    with_selectors = (top(provider, q, 10), top(provider, q, 10, {"parity": 1}))
    provider.use_selectors = False
    without = (top(provider, q, 10), top(provider, q, 10, {"parity": 1}))
    assert with_selectors == without
    alive = lambda i: i % 3 != 0  # noqa: E731
    assert without[0] == exact(vectors, q, 10, alive)
    assert without[1] == exact(vectors, q, 10, lambda i: alive(i) and i % 2 == 1)


def test_dead_positions_are_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(faiss_impl, "COMPACT_MIN_DEAD", 50)
    provider = make(tmp_path)
    vectors, chunks = data(200)
    asyncio.run(provider.register_vector_db(VDB))
    asyncio.run(provider.insert_chunks(VDB, chunks))
    index = provider.indexes["v"]
    asyncio.run(provider.delete_chunks(VDB, [f"c{i}" for i in range(30)]))
    assert index.dead == 30 and index.ntotal == 200
    asyncio.run(provider.delete_chunks(VDB, [f"c{i}" for i in range(30, 60)]))
    assert index.dead == 0 and index.ntotal == 140  # compacted at 60 dead
    q = vectors[100]
    assert top(provider, q, 5) == exact(vectors, q, 5, lambda i: i >= 60)
    asyncio.run(provider.shutdown())
    again = make(tmp_path)
    assert again.indexes["v"].ntotal == 140
    assert top(again, q, 5) == exact(vectors, q, 5, lambda i: i >= 60)


def test_snapshot_then_replay_of_the_tail(tmp_path):
    provider = make(tmp_path, index_type="hnsw", snapshot_min_vectors=100)
    vectors, chunks = data(260)
    asyncio.run(provider.register_vector_db(VDB))
    for i in range(0, 260, 20):
        asyncio.run(provider.insert_chunks(VDB, chunks[i : i + 20]))
    index = provider.indexes["v"]
    assert 0 < index.snapshot_ntotal < 260  # a snapshot, and vectors after it
    assert index.snapshot_path.exists()
    snap = index.snapshot_ntotal
    # Without shutdown (as after a crash): the snapshot plus the store's tail.
    again = make(tmp_path, index_type="hnsw", snapshot_min_vectors=100)
    reloaded = again.indexes["v"]
    assert reloaded.snapshot_ntotal == snap and reloaded.ntotal == 260
    q = vectors[7]
    assert top(again, q, 5) == top(provider, q, 5)
    assert top(again, q, 1) == ["c7"]


def test_ivf_is_exact_until_trained_then_approximate(tmp_path):
    provider = make(tmp_path, index_type="ivf", ivf_nlist=4, ivf_nprobe=4, ivf_train_size=100)
    vectors, chunks = data(150)
    asyncio.run(provider.register_vector_db(VDB))
    asyncio.run(provider.insert_chunks(VDB, chunks[:50]))
    assert "IVF" not in type(provider.indexes["v"].index).__name__
    asyncio.run(provider.insert_chunks(VDB, chunks[50:]))
    assert "IVF" in type(provider.indexes["v"].index).__name__
    q = vectors[42]
    assert top(provider, q, 5) == exact(vectors, q, 5)  # nprobe = nlist: exhaustive


def test_provider_behind_a_proxy_as_in_its_own_deployment(tmp_path):
    """faiss runs in its own deployment: the router reaches it through an `ApiClient`,
    guarded like any provider."""
    from stackray.runtime.calls import local_client
    from stackray.runtime.config import parse_config
    from stackray.runtime.resolver import build_providers

    stack = parse_config(
        {
            "version": 2,
            "image_name": "proxy",
            "apis": ["vector_io", "inference"],
            "providers": {
                "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}]
            },
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    server = make(tmp_path / "server")

    async def main() -> list[Any]:
        providers = await build_providers(
            stack, Api.vector_io, {}, {"faiss": local_client(server, "index-faiss")}
        )
        proxy = providers["faiss"]
        vectors, chunks = data(20)
        await proxy.register_vector_db(VDB)
        await proxy.insert_chunks(VDB, chunks)
        return await proxy.query_vector(VDB, vectors[3].tolist(), 2, -1.0)

    hits = asyncio.run(main())
    assert hits[0].chunk.metadata["chunk_id"] == "c3"
    assert server.indexes["v"].ntotal == 20


def test_config_rejects_unknown_index_type():
    with pytest.raises(ValueError):
        FaissVectorIOConfig(index_type="lsh")  # type: ignore[arg-type]


def test_replay_skips_chunks_deleted_after_the_snapshot(tmp_path):
    provider = make(tmp_path, snapshot_min_vectors=100)
    vectors, chunks = data(180)
    asyncio.run(provider.register_vector_db(VDB))
    asyncio.run(provider.insert_chunks(VDB, chunks[:100]))
    assert provider.indexes["v"].snapshot_ntotal == 100
    asyncio.run(provider.insert_chunks(VDB, chunks[100:]))  # the tail, not snapshotted
    gone = [
        f"c{i}" for i in (3, 120, 150, 178, 179)
    ]  # in the snapshot, inside and at the end of the tail
    asyncio.run(provider.delete_chunks(VDB, gone))
    again = make(tmp_path, snapshot_min_vectors=100)  # no shutdown: as after a crash
    keep = lambda i: f"c{i}" not in gone  # noqa: E731
    for q in (vectors[120], vectors[179], vectors[5]):
        assert top(again, q, 8) == exact(vectors, q, 8, keep)
    asyncio.run(again.insert_chunks(VDB, [chunks[179]]))
    assert top(again, vectors[179], 1) == ["c179"]


def test_a_0_2_12_kvstore_puts_the_chunks_where_it_says(tmp_path):
    import sqlite3

    store = tmp_path / "elsewhere" / "faiss_store.db"
    kvstore = {"type": "sqlite", "namespace": None, "db_path": str(store)}
    provider = make(tmp_path / "data", kvstore=kvstore)
    vectors, chunks = data(12)
    asyncio.run(provider.register_vector_db(VDB))
    asyncio.run(provider.insert_chunks(VDB, chunks))
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM chunks WHERE db = 'v'").fetchone() == (12,)
    assert not (tmp_path / "data" / "faiss.db").exists()
    again = make(tmp_path / "other-data", kvstore=kvstore)
    assert top(again, vectors[3], 1) == ["c3"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kvstore": {"type": "postgres", "user": "u"}}, "kvstore.type: inline::faiss keeps"),
        (
            {"kvstore": {"type": "sqlite", "namespace": "ns", "db_path": "/tmp/f.db"}},
            "kvstore.namespace",
        ),
        (
            {"db_path": "/tmp/a.db", "kvstore": {"type": "sqlite", "db_path": "/tmp/b.db"}},
            "name two files",
        ),
    ],
)
def test_a_kvstore_it_cannot_honour_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        FaissVectorIOConfig(**config)
