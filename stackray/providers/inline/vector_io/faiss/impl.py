"""`inline::faiss`: FAISS indexes (flat, HNSW or IVF; cosine via inner product on
normalized vectors) with the chunks and vectors in SQLite.

Durability without rewriting the index on every insert: the SQLite chunk store is the
source of truth and takes each insert in one transaction (cost linear in the batch). The
index in memory is a cache of it; a snapshot of the index is written to a file now and
then (when the vectors added since the last one reach a quarter of it), and on load the
vectors added after the snapshot are replayed from the store. A chunk replaced or
deleted leaves a dead position in the index, excluded from searches by an ID selector;
dead positions are compacted away when they pile up.

With GPUs visible to faiss (`faiss.get_num_gpus() > 0`), flat and IVF indexes are moved
to them; searches then exclude dead or filtered-out positions by over-fetching.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.inline.vector_io.faiss.config import FaissVectorIOConfig
from stackray.providers.utils.keyword import BM25Index
from stackray.providers.utils.vector import (
    chunk_id_of,
    chunk_text,
    sqlite_filter_sql,
    stored_chunk_json,
    table_suffix,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dbs (
    db TEXT PRIMARY KEY, dim INTEGER NOT NULL, next_pos INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chunks (
    db TEXT NOT NULL, chunk_id TEXT NOT NULL, pos INTEGER NOT NULL,
    chunk TEXT NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (db, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_pos ON chunks (db, pos);
"""

COMPACT_MIN_DEAD = 1000
COMPACT_DEAD_FRACTION = 0.2


def normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class FaissIndex:
    """One vector db's index: positions 0..ntotal-1 map to chunk ids (None when dead)."""

    def __init__(self, name: str, dim: int, config: FaissVectorIOConfig, snapshot: Path) -> None:
        self.name = name
        self.dim = dim
        self.config = config
        self.snapshot_path = snapshot
        self.snapshot_ntotal = 0
        self.ids: list[str | None] = []
        self.dead = 0
        self.bm25: BM25Index | None = None
        self.lock = threading.RLock()
        self.index: Any = self._new_index()
        self._dead_selector: Any = None

    # ---- building ----------------------------------------------------------------------

    def _new_index(self) -> Any:
        import faiss

        if self.config.index_type == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.config.hnsw_ef_construction
            index.hnsw.efSearch = self.config.hnsw_ef_search
            return index
        # IVF starts flat (exact) and is trained once it has enough vectors.
        return self._place(faiss.IndexFlatIP(self.dim))

    @property
    def on_gpu(self) -> bool:
        return "Gpu" in type(self.index).__name__

    def _place(self, index: Any) -> Any:
        import faiss

        if self.config.use_gpu and faiss.get_num_gpus() > 0:
            return faiss.index_cpu_to_all_gpus(index)
        return index

    def _cpu_index(self) -> Any:
        import faiss

        return faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index

    def _train_size(self) -> int:
        return self.config.ivf_train_size or 39 * self.config.ivf_nlist

    def _maybe_train_ivf(self) -> None:
        import faiss

        if self.config.index_type != "ivf" or "IVF" in type(self.index).__name__:
            return
        if self.index.ntotal < max(self._train_size(), self.config.ivf_nlist):
            return
        vectors = self._cpu_index().reconstruct_n(0, self.index.ntotal)
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(
            quantizer, self.dim, self.config.ivf_nlist, faiss.METRIC_INNER_PRODUCT
        )
        ivf.train(vectors)
        ivf.add(vectors)
        ivf.nprobe = self.config.ivf_nprobe
        self.index = self._place(ivf)
        self.snapshot_ntotal = 0  # the old snapshot is of the flat index

    def _threads_for_building(self) -> None:
        import faiss

        faiss.omp_set_num_threads(self.config.num_threads or os.cpu_count() or 1)

    def add(self, vectors: np.ndarray, chunk_ids: list[str | None]) -> None:
        self._threads_for_building()
        self.index.add(vectors)
        self.ids.extend(chunk_ids)
        self._maybe_train_ivf()

    def kill(self, positions: list[int]) -> None:
        for pos in positions:
            if 0 <= pos < len(self.ids) and self.ids[pos] is not None:
                self.ids[pos] = None
                self.dead += 1
        self._dead_selector = None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def needs_compaction(self) -> bool:
        return self.dead >= max(COMPACT_MIN_DEAD, COMPACT_DEAD_FRACTION * self.ntotal)

    def reset(self) -> None:
        self.index = self._new_index()
        self.ids = []
        self.dead = 0
        self.snapshot_ntotal = 0
        self._dead_selector = None

    # ---- snapshots ---------------------------------------------------------------------

    def maybe_snapshot(self) -> None:
        added = self.ntotal - self.snapshot_ntotal
        if added >= max(self.config.snapshot_min_vectors, self.snapshot_ntotal // 4):
            self.write_snapshot()

    def write_snapshot(self) -> None:
        import faiss

        tmp = self.snapshot_path.with_suffix(".tmp")
        faiss.write_index(self._cpu_index(), str(tmp))
        os.replace(tmp, self.snapshot_path)
        self.snapshot_ntotal = self.ntotal

    def drop_snapshot(self) -> None:
        self.snapshot_path.unlink(missing_ok=True)
        self.snapshot_ntotal = 0

    def load_snapshot(self, max_ntotal: int) -> bool:
        import faiss

        if not self.snapshot_path.exists():
            return False
        try:
            index = faiss.read_index(str(self.snapshot_path))
        except RuntimeError:
            return False
        if index.d != self.dim or index.ntotal > max_ntotal:
            return False
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = self.config.hnsw_ef_search
        if hasattr(index, "nprobe"):
            index.nprobe = self.config.ivf_nprobe
        self.index = index if hasattr(index, "hnsw") else self._place(index)
        self.snapshot_ntotal = int(index.ntotal)
        return True

    # ---- search ------------------------------------------------------------------------

    def _params(self, selector: Any) -> Any:
        import faiss as faiss_module

        faiss: Any = faiss_module  # its stubs lack the SearchParameters keyword arguments

        if hasattr(self.index, "hnsw"):
            return faiss.SearchParametersHNSW(sel=selector, efSearch=self.config.hnsw_ef_search)
        if "IVF" in type(self.index).__name__:
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.config.ivf_nprobe)
        return faiss.SearchParameters(sel=selector)

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, use_selectors: bool
    ) -> list[tuple[int, float]]:
        """Up to `k` (position, score) of live positions (within `allowed`), best first."""
        import faiss

        # One query gains nothing from OpenMP threads and loses much when cores are busy
        # (measured: a 10k flat search took 0.5 ms on one thread, 5-50 ms on two). The
        # setting is per OS thread: this worker thread only.
        faiss.omp_set_num_threads(1)

        live = self.ntotal - self.dead
        if live == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        if use_selectors and not self.on_gpu:
            selector = None
            if allowed is not None:
                selector = faiss.IDSelectorBatch(allowed.astype(np.int64))
                k = min(k, len(allowed))
            elif self.dead:
                if self._dead_selector is None:
                    dead = np.array(
                        [i for i, cid in enumerate(self.ids) if cid is None], dtype=np.int64
                    )
                    inner = faiss.IDSelectorBatch(dead)
                    # The outer selector does not own the inner one: keep both alive.
                    self._dead_selector = (inner, faiss.IDSelectorNot(inner))
                selector = self._dead_selector[1]
            kk = min(k, live)
            params = self._params(selector) if selector is not None else None
            scores, positions = self.index.search(query, kk, params=params)
            return [
                (int(p), float(s))
                for p, s in zip(positions[0], scores[0], strict=True)
                if p >= 0 and self.ids[p] is not None
            ]
        # Over-fetch and filter (GPU indexes take no selectors).
        allowed_set = set(allowed.tolist()) if allowed is not None else None
        limit = min(self.ntotal, 2048 if self.on_gpu else self.ntotal)
        kk = min(limit, k + self.dead)
        while True:
            scores, positions = self.index.search(query, kk)
            hits = [
                (int(p), float(s))
                for p, s in zip(positions[0], scores[0], strict=True)
                if p >= 0
                and self.ids[p] is not None
                and (allowed_set is None or int(p) in allowed_set)
            ]
            if len(hits) >= k or kk >= limit:
                return hits[:k]
            kk = min(limit, kk * 4)


class FaissVectorIOProvider:
    """Vector IO on FAISS with a SQLite chunk store; see the module docstring."""

    def __init__(self, config: FaissVectorIOConfig, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.data_dir = Path(context.data_dir)
        store_path = config.store_path()
        self.db_path = Path(store_path).expanduser() if store_path else self.data_dir / "faiss.db"
        self.indexes: dict[str, FaissIndex] = {}
        self._db_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.use_selectors = True

    async def initialize(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        import faiss  # noqa: F401  (fail at start, not at the first request)

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA)
        self._conn = conn
        for name, dim in conn.execute("SELECT db, dim FROM dbs").fetchall():
            self.indexes[name] = self._load_index(name, dim)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "provider not initialized"
        return self._conn

    def _snapshot_path(self, name: str) -> Path:
        return self.data_dir / f"index-{table_suffix(name)}.faiss"

    def _load_index(self, name: str, dim: int) -> FaissIndex:
        index = FaissIndex(name, dim, self.config, self._snapshot_path(name))
        rows = self.conn.execute(
            "SELECT pos, chunk_id FROM chunks WHERE db = ? ORDER BY pos", (name,)
        ).fetchall()
        stored = self.conn.execute("SELECT next_pos FROM dbs WHERE db = ?", (name,)).fetchone()
        next_pos = max(rows[-1][0] + 1 if rows else 0, stored[0] if stored else 0)
        # A snapshot can hold no more positions than were ever handed out.
        if not index.load_snapshot(next_pos):
            index.reset()
        ids: list[str | None] = [None] * index.ntotal
        tail: list[tuple[int, str]] = []
        for pos, cid in rows:
            if pos < index.ntotal:
                ids[pos] = cid
            else:
                tail.append((pos, cid))
        index.ids = ids
        index.dead = sum(1 for c in ids if c is None)
        if tail:
            # Replay what came after the snapshot in one add; positions whose chunks were
            # deleted meanwhile become dead zero vectors, keeping positions dense.
            base = index.ntotal
            vectors = np.zeros((tail[-1][0] + 1 - base, dim), dtype=np.float32)
            tail_ids: list[str | None] = [None] * len(vectors)
            for pos, vec in self.conn.execute(
                "SELECT pos, vector FROM chunks WHERE db = ? AND pos >= ?", (name, base)
            ):
                vectors[pos - base] = np.frombuffer(vec, dtype=np.float32)
            for pos, cid in tail:
                tail_ids[pos - base] = cid
            index.add(vectors, tail_ids)
            index.dead += sum(1 for c in tail_ids if c is None)
        self.conn.execute(
            "UPDATE dbs SET next_pos = ? WHERE db = ?", (max(next_pos, index.ntotal), name)
        )
        if index.needs_compaction():
            self._compact(index)
        return index

    # ---- vector dbs --------------------------------------------------------------------

    @staticmethod
    def _name(vector_db: VectorDB) -> str:
        return vector_db.provider_resource_id or vector_db.identifier

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        await asyncio.to_thread(
            self._register, self._name(vector_db), vector_db.embedding_dimension
        )

    def _register(self, name: str, dim: int) -> None:
        with self._db_lock:
            if name in self.indexes:
                return
            self.conn.execute("INSERT OR IGNORE INTO dbs (db, dim) VALUES (?, ?)", (name, dim))
            self.indexes[name] = FaissIndex(name, dim, self.config, self._snapshot_path(name))

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        await asyncio.to_thread(self._unregister, vector_db_id)

    def _unregister(self, name: str) -> None:
        with self._db_lock:
            index = self.indexes.pop(name, None)
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM chunks WHERE db = ?", (name,))
            self.conn.execute("DELETE FROM dbs WHERE db = ?", (name,))
            self.conn.execute("COMMIT")
            self._snapshot_path(name).unlink(missing_ok=True)
            if index is not None:
                index.reset()

    def _index(self, vector_db: VectorDB) -> FaissIndex:
        name = self._name(vector_db)
        index = self.indexes.get(name)
        if index is None:
            # Registered through another process with this data dir, or before a restart.
            self._register(name, vector_db.embedding_dimension)
            index = self.indexes[name]
        return index

    # ---- chunks ------------------------------------------------------------------------

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        if chunks:
            await asyncio.to_thread(self._insert, vector_db, chunks)

    def _insert(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        index = self._index(vector_db)
        vectors = normalized(np.asarray([c.embedding for c in chunks], dtype=np.float32))
        ids = [chunk_id_of(c) for c in chunks]
        with index.lock, self._db_lock:
            start = index.ntotal
            old = self._positions(index.name, ids)
            rows = [
                (
                    index.name,
                    cid,
                    start + i,
                    stored_chunk_json(c),
                    chunk_text(c),
                    json.dumps(c.metadata),
                    vectors[i].tobytes(),
                )
                for i, (cid, c) in enumerate(zip(ids, chunks, strict=True))
            ]
            # One transaction: all of the batch is stored, or none of it.
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO chunks (db, chunk_id, pos, chunk, text, metadata, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self.conn.execute(
                    "UPDATE dbs SET next_pos = ? WHERE db = ?", (start + len(rows), index.name)
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            index.kill(list(old.values()))
            index.add(vectors, list(ids))
            if index.bm25 is not None:
                for cid, row in zip(ids, rows, strict=True):
                    index.bm25.add(cid, row[4])
            if index.needs_compaction():
                self._compact(index)
            else:
                index.maybe_snapshot()

    def _positions(self, name: str, chunk_ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(chunk_ids), 500):
            part = chunk_ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for cid, pos in self.conn.execute(
                f"SELECT chunk_id, pos FROM chunks WHERE db = ? AND chunk_id IN ({marks})",
                (name, *part),
            ):
                found[cid] = pos
        return found

    def _compact(self, index: FaissIndex) -> None:
        """Rebuild the index from the live chunks, renumbering positions densely."""
        index.drop_snapshot()
        rows = self.conn.execute(
            "SELECT chunk_id, vector FROM chunks WHERE db = ? ORDER BY pos", (index.name,)
        ).fetchall()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "UPDATE chunks SET pos = ? WHERE db = ? AND chunk_id = ?",
            [(i, index.name, cid) for i, (cid, _) in enumerate(rows)],
        )
        self.conn.execute("UPDATE dbs SET next_pos = ? WHERE db = ?", (len(rows), index.name))
        self.conn.execute("COMMIT")
        index.reset()
        if rows:
            vectors = np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(
                len(rows), index.dim
            )
            index.add(vectors, [str(cid) for cid, _ in rows])
        index.write_snapshot()

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        await asyncio.to_thread(self._delete, vector_db, chunk_ids)

    def _delete(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        index = self._index(vector_db)
        with index.lock, self._db_lock:
            old = self._positions(index.name, chunk_ids)
            if not old:
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "DELETE FROM chunks WHERE db = ? AND chunk_id = ?",
                [(index.name, cid) for cid in old],
            )
            self.conn.execute("COMMIT")
            index.kill(list(old.values()))
            if index.bm25 is not None:
                for cid in old:
                    index.bm25.remove(cid)
            if index.needs_compaction():
                self._compact(index)

    def _allowed_positions(self, name: str, filters: dict[str, Any] | None) -> np.ndarray | None:
        if not filters:
            return None
        where, params = sqlite_filter_sql(filters, "metadata")
        with self._db_lock:
            rows = self.conn.execute(
                f"SELECT pos FROM chunks WHERE db = ? AND {where}", (name, *params)
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def _chunks_at(self, name: str, positions: list[int]) -> dict[int, Chunk]:
        if not positions:
            return {}
        marks = ",".join("?" * len(positions))
        with self._db_lock:
            rows = self.conn.execute(
                f"SELECT pos, chunk FROM chunks WHERE db = ? AND pos IN ({marks})",
                (name, *positions),
            ).fetchall()
        return {pos: Chunk.model_validate_json(chunk) for pos, chunk in rows}

    async def query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        return await asyncio.to_thread(
            self._query_vector, vector_db, embedding, k, score_threshold, filters
        )

    def _query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None,
    ) -> list[ScoredChunk]:
        index = self._index(vector_db)
        query = normalized(np.asarray([embedding], dtype=np.float32))
        with index.lock:
            allowed = self._allowed_positions(index.name, filters)
            hits = index.search(query, k, allowed, self.use_selectors)
            hits = [(p, s) for p, s in hits if s >= score_threshold]
            chunks = self._chunks_at(index.name, [p for p, _ in hits])
        return [ScoredChunk(chunk=chunks[p], score=s) for p, s in hits if p in chunks]

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        return await asyncio.to_thread(
            self._query_keyword, vector_db, query, k, score_threshold, filters
        )

    def _query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None,
    ) -> list[ScoredChunk]:
        index = self._index(vector_db)
        with index.lock:
            if index.bm25 is None:
                # Built on the first keyword query, then kept up to date by inserts.
                bm25 = BM25Index()
                with self._db_lock:
                    for cid, text in self.conn.execute(
                        "SELECT chunk_id, text FROM chunks WHERE db = ?", (index.name,)
                    ):
                        bm25.add(cid, text)
                index.bm25 = bm25
            allowed: set[str] | None = None
            if filters:
                where, params = sqlite_filter_sql(filters, "metadata")
                with self._db_lock:
                    allowed = {
                        r[0]
                        for r in self.conn.execute(
                            f"SELECT chunk_id FROM chunks WHERE db = ? AND {where}",
                            (index.name, *params),
                        )
                    }
            ranked = [
                (cid, s) for cid, s in index.bm25.search(query, k, allowed) if s >= score_threshold
            ]
        if not ranked:
            return []
        marks = ",".join("?" * len(ranked))
        with self._db_lock:
            rows = dict(
                self.conn.execute(
                    f"SELECT chunk_id, chunk FROM chunks WHERE db = ? AND chunk_id IN ({marks})",
                    (index.name, *[cid for cid, _ in ranked]),
                ).fetchall()
            )
        return [
            ScoredChunk(chunk=Chunk.model_validate_json(rows[cid]), score=s)
            for cid, s in ranked
            if cid in rows
        ]

    async def shutdown(self) -> None:
        """Write the index snapshots and close the chunk store."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        for index in self.indexes.values():
            with index.lock:
                if index.ntotal != index.snapshot_ntotal:
                    index.write_snapshot()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
