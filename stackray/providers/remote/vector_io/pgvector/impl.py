"""`remote::pgvector`: a table per vector db in PostgreSQL with pgvector.

Each table holds the chunk (JSON), its metadata (jsonb), its embedding (`vector(dim)`,
cosine distance, an HNSW index unless `index_type: flat`) and a generated `tsvector` with
a GIN index for keyword search (`ts_rank_cd`). Metadata filters are jsonb equality
conditions; a filtered vector query scans exactly (pgvector before 0.8 filters HNSW
results after the scan, which can return fewer than k).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.remote.vector_io.pgvector.config import PGVectorVectorIOConfig
from stackray.providers.utils.keyword import tokenize
from stackray.providers.utils.vector import (
    chunk_id_of,
    chunk_text,
    stored_chunk_json,
    table_suffix,
)


def vector_literal(values: list[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


class PGVectorVectorIOProvider:
    """Vector IO on PostgreSQL + pgvector; see the module docstring."""

    def __init__(self, config: PGVectorVectorIOConfig, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._known: set[str] = set()
        """Tables this process created or saw (skips the CREATE ... IF NOT EXISTS round trips)."""

    async def initialize(self) -> None:
        async with self._lock:
            conn = await self._connection()
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS stackray_vector_dbs ("
                "name TEXT PRIMARY KEY, table_name TEXT NOT NULL, dim INTEGER NOT NULL)"
            )

    async def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(
                host=self.config.host,
                port=self.config.port,
                dbname=self.config.db,
                user=self.config.user,
                password=self.config.password,
                autocommit=True,
            )
        return self._conn

    @staticmethod
    def _name(vector_db: VectorDB) -> str:
        return vector_db.provider_resource_id or vector_db.identifier

    @staticmethod
    def _table(name: str) -> str:
        return f"vdb_{table_suffix(name)}"

    async def _ensure_table(self, conn: Any, vector_db: VectorDB) -> str:
        name = self._name(vector_db)
        table = self._table(name)
        dim = int(vector_db.embedding_dimension)
        ts = self.config.text_search_config
        if table in self._known:
            return table
        async with conn.transaction():
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                "id BIGSERIAL PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, chunk JSONB NOT NULL, "
                f"metadata JSONB NOT NULL, content TEXT NOT NULL, embedding vector({dim}) NOT NULL, "
                f"tsv tsvector GENERATED ALWAYS AS (to_tsvector('{ts}', content)) STORED)"
            )
            await conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_tsv ON {table} USING gin (tsv)")
            if self.config.index_type == "hnsw":
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw "
                    f"(embedding vector_cosine_ops) WITH (m = {self.config.hnsw_m}, "
                    f"ef_construction = {self.config.hnsw_ef_construction})"
                )
            await conn.execute(
                "INSERT INTO stackray_vector_dbs (name, table_name, dim) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (name, table, dim),
            )
        self._known.add(table)
        return table

    # ---- vector dbs --------------------------------------------------------------------

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        async with self._lock:
            self._known.discard(self._table(self._name(vector_db)))
            await self._ensure_table(await self._connection(), vector_db)

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        async with self._lock:
            conn = await self._connection()
            self._known.discard(self._table(vector_db_id))
            async with conn.transaction():
                await conn.execute(f"DROP TABLE IF EXISTS {self._table(vector_db_id)}")
                await conn.execute(
                    "DELETE FROM stackray_vector_dbs WHERE name = %s", (vector_db_id,)
                )

    # ---- chunks ------------------------------------------------------------------------

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        rows = [
            (
                chunk_id_of(c),
                stored_chunk_json(c),
                json.dumps(c.metadata),
                chunk_text(c).replace("\x00", ""),
                vector_literal(c.embedding or []),
            )
            for c in chunks
        ]
        async with self._lock:
            conn = await self._connection()
            table = await self._ensure_table(conn, vector_db)
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO {table} (chunk_id, chunk, metadata, content, embedding) "
                    "VALUES (%s, %s::jsonb, %s::jsonb, %s, %s::vector) "
                    "ON CONFLICT (chunk_id) DO UPDATE SET chunk = EXCLUDED.chunk, "
                    "metadata = EXCLUDED.metadata, content = EXCLUDED.content, "
                    "embedding = EXCLUDED.embedding",
                    rows,
                )

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        async with self._lock:
            conn = await self._connection()
            table = await self._ensure_table(conn, vector_db)
            await conn.execute(f"DELETE FROM {table} WHERE chunk_id = ANY(%s)", (list(chunk_ids),))

    @staticmethod
    def _filter(filters: dict[str, Any] | None) -> tuple[str, list[Any]]:
        if not filters:
            return "", []
        parts, params = [], []
        for key, value in filters.items():
            parts.append("metadata -> %s = %s::jsonb")
            params.extend([key, json.dumps(value)])
        return " AND " + " AND ".join(parts), params

    async def query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        where, params = self._filter(filters)
        vec = vector_literal(embedding)
        async with self._lock:
            conn = await self._connection()
            table = await self._ensure_table(conn, vector_db)
            async with conn.transaction():
                ef = max(self.config.hnsw_ef_search, min(k, 1000))
                await conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                if filters:
                    await conn.execute("SET LOCAL enable_indexscan = off")
                cur = await conn.execute(
                    f"SELECT chunk, 1 - (embedding <=> %s::vector) AS score FROM {table} "
                    f"WHERE TRUE{where} ORDER BY embedding <=> %s::vector LIMIT %s",
                    (vec, *params, vec, k),
                )
                rows = await cur.fetchall()
        return [
            ScoredChunk(chunk=Chunk.model_validate(chunk), score=float(score))
            for chunk, score in rows
            if float(score) >= score_threshold
        ]

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        words = list(dict.fromkeys(tokenize(query)))
        if not words:
            return []
        where, params = self._filter(filters)
        ts = self.config.text_search_config
        # Any of the words: OR the per-word queries (plainto_tsquery would AND them).
        tsquery = " || ".join([f"plainto_tsquery('{ts}', %s)"] * len(words))
        async with self._lock:
            conn = await self._connection()
            table = await self._ensure_table(conn, vector_db)
            cur = await conn.execute(
                f"SELECT chunk, ts_rank_cd(tsv, q, 1) AS score FROM {table}, ({'SELECT ' + tsquery} AS q) AS query "
                f"WHERE tsv @@ q{where} ORDER BY score DESC, id LIMIT %s",
                (*words, *params, k),
            )
            rows = await cur.fetchall()
        return [
            ScoredChunk(chunk=Chunk.model_validate(chunk), score=float(score))
            for chunk, score in rows
            if float(score) > 0 and float(score) >= score_threshold
        ]

    async def shutdown(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
