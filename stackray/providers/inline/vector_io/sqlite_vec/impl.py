"""`inline::sqlite-vec`: one SQLite file; per vector db a chunks table, a `vec0` virtual
table (exact cosine KNN) and an FTS5 table (BM25 keyword search), written together in one
transaction per insert.

The stdlib `sqlite3` of many Python builds cannot load extensions; `pysqlite3` (from the
`pysqlite3-binary` package) can, and is used when installed.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.inline.vector_io.sqlite_vec.config import SQLiteVecVectorIOConfig
from stackray.providers.utils.keyword import tokenize
from stackray.providers.utils.vector import (
    chunk_id_of,
    chunk_text,
    sqlite_filter_sql,
    stored_chunk_json,
    table_suffix,
)

MAX_K = 4096  # sqlite-vec's limit on k in one KNN query


def connect(path: Path) -> Any:
    """A connection with the sqlite-vec extension loaded."""
    import sqlite_vec

    try:
        from pysqlite3 import dbapi2 as sqlite3
    except ImportError:  # a Python whose sqlite3 can load extensions
        import sqlite3  # type: ignore[no-redef]
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def fts_query(text: str) -> str:
    """Any of the query's words (BM25 ranks documents with more and rarer ones higher)."""
    return " OR ".join(f'"{t}"' for t in dict.fromkeys(tokenize(text)))


class SQLiteVecVectorIOProvider:
    """Vector IO on sqlite-vec + FTS5; see the module docstring."""

    def __init__(self, config: SQLiteVecVectorIOConfig, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.db_path = (
            Path(config.db_path) if config.db_path else Path(context.data_dir) / "sqlite_vec.db"
        )
        self._lock = threading.Lock()
        self._conn: Any = None

    async def initialize(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.db_path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vector_dbs (name TEXT PRIMARY KEY, suffix TEXT NOT NULL, dim INTEGER NOT NULL)"
        )

    @property
    def conn(self) -> Any:
        assert self._conn is not None, "provider not initialized"
        return self._conn

    @staticmethod
    def _name(vector_db: VectorDB) -> str:
        return vector_db.provider_resource_id or vector_db.identifier

    def _tables(self, name: str, dim: int | None = None) -> str:
        """The suffix of `name`'s tables, creating them when `dim` is given."""
        s = table_suffix(name)
        row = self.conn.execute("SELECT suffix FROM vector_dbs WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return str(row[0])
        if dim is None:
            raise ValueError(f"vector db {name!r} has no tables")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS chunks_{s} (rowid INTEGER PRIMARY KEY, "
                "chunk_id TEXT NOT NULL UNIQUE, chunk TEXT NOT NULL, metadata TEXT NOT NULL)"
            )
            self.conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS vec_{s} USING vec0("
                f"embedding float[{int(dim)}] distance_metric=cosine)"
            )
            self.conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS fts_{s} USING fts5(text)")
            self.conn.execute(
                "INSERT OR IGNORE INTO vector_dbs (name, suffix, dim) VALUES (?, ?, ?)",
                (name, s, int(dim)),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return s

    # ---- vector dbs --------------------------------------------------------------------

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        def run() -> None:
            with self._lock:
                self._tables(self._name(vector_db), vector_db.embedding_dimension)

        await asyncio.to_thread(run)

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        def run() -> None:
            with self._lock:
                row = self.conn.execute(
                    "SELECT suffix FROM vector_dbs WHERE name = ?", (vector_db_id,)
                ).fetchone()
                if row is None:
                    return
                s = row[0]
                self.conn.execute("BEGIN IMMEDIATE")
                for table in (f"chunks_{s}", f"vec_{s}", f"fts_{s}"):
                    self.conn.execute(f"DROP TABLE IF EXISTS {table}")
                self.conn.execute("DELETE FROM vector_dbs WHERE name = ?", (vector_db_id,))
                self.conn.execute("COMMIT")

        await asyncio.to_thread(run)

    # ---- chunks ------------------------------------------------------------------------

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        if chunks:
            await asyncio.to_thread(self._insert, vector_db, chunks)

    def _delete_ids(self, s: str, chunk_ids: list[str]) -> None:
        for i in range(0, len(chunk_ids), 500):
            part = chunk_ids[i : i + 500]
            marks = ",".join("?" * len(part))
            rowids = [
                (r[0],)
                for r in self.conn.execute(
                    f"SELECT rowid FROM chunks_{s} WHERE chunk_id IN ({marks})", part
                )
            ]
            if rowids:
                self.conn.executemany(f"DELETE FROM chunks_{s} WHERE rowid = ?", rowids)
                self.conn.executemany(f"DELETE FROM vec_{s} WHERE rowid = ?", rowids)
                self.conn.executemany(f"DELETE FROM fts_{s} WHERE rowid = ?", rowids)

    def _insert(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        import numpy as np

        ids = [chunk_id_of(c) for c in chunks]
        with self._lock:
            s = self._tables(self._name(vector_db), vector_db.embedding_dimension)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._delete_ids(s, ids)
                for cid, chunk in zip(ids, chunks, strict=True):
                    cur = self.conn.execute(
                        f"INSERT INTO chunks_{s} (chunk_id, chunk, metadata) VALUES (?, ?, ?)",
                        (cid, stored_chunk_json(chunk), json.dumps(chunk.metadata)),
                    )
                    rowid = cur.lastrowid
                    vector = np.asarray(chunk.embedding, dtype=np.float32).tobytes()
                    self.conn.execute(
                        f"INSERT INTO vec_{s} (rowid, embedding) VALUES (?, ?)", (rowid, vector)
                    )
                    self.conn.execute(
                        f"INSERT INTO fts_{s} (rowid, text) VALUES (?, ?)",
                        (rowid, chunk_text(chunk)),
                    )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        def run() -> None:
            with self._lock:
                s = self._tables(self._name(vector_db), vector_db.embedding_dimension)
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    self._delete_ids(s, list(chunk_ids))
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise

        await asyncio.to_thread(run)

    def _filter(self, s: str, filters: dict[str, Any] | None) -> tuple[str, list[Any]]:
        if not filters:
            return "", []
        where, params = sqlite_filter_sql(filters, "metadata")
        return f" AND rowid IN (SELECT rowid FROM chunks_{s} WHERE {where})", params

    def _chunks(self, s: str, rowids: list[int]) -> dict[int, Chunk]:
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        return {
            rowid: Chunk.model_validate_json(chunk)
            for rowid, chunk in self.conn.execute(
                f"SELECT rowid, chunk FROM chunks_{s} WHERE rowid IN ({marks})", rowids
            )
        }

    async def query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        import numpy as np

        query = np.asarray(embedding, dtype=np.float32).tobytes()

        def run() -> list[ScoredChunk]:
            with self._lock:
                s = self._tables(self._name(vector_db), vector_db.embedding_dimension)
                where, params = self._filter(s, filters)
                rows = self.conn.execute(
                    f"SELECT rowid, distance FROM vec_{s} WHERE embedding MATCH ? AND k = ?"
                    f"{where} ORDER BY distance",
                    (query, min(k, MAX_K), *params),
                ).fetchall()
                hits = [(r, 1.0 - d) for r, d in rows if 1.0 - d >= score_threshold]
                chunks = self._chunks(s, [r for r, _ in hits])
            return [ScoredChunk(chunk=chunks[r], score=sc) for r, sc in hits if r in chunks]

        return await asyncio.to_thread(run)

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        match = fts_query(query)
        if not match:
            return []

        def run() -> list[ScoredChunk]:
            with self._lock:
                s = self._tables(self._name(vector_db), vector_db.embedding_dimension)
                where, params = self._filter(s, filters)
                # FTS5's bm25() is lower-is-better: negate it.
                rows = self.conn.execute(
                    f"SELECT rowid, -bm25(fts_{s}) AS score FROM fts_{s} WHERE fts_{s} MATCH ?"
                    f"{where} ORDER BY score DESC LIMIT ?",
                    (match, *params, k),
                ).fetchall()
                hits = [(r, sc) for r, sc in rows if sc > 0 and sc >= score_threshold]
                chunks = self._chunks(s, [r for r, _ in hits])
            return [ScoredChunk(chunk=chunks[r], score=sc) for r, sc in hits if r in chunks]

        return await asyncio.to_thread(run)

    async def shutdown(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
