"""`inline::qdrant`: vector dbs as collections of qdrant-client's local mode.

One collection per vector db (cosine distance); a point per chunk, its id a UUID derived
from the chunk id, its payload the chunk id, the text, the chunk JSON and the metadata
under ``md`` (so `filters` become a native Qdrant filter, and the score threshold is
applied by Qdrant). Qdrant's full-text index filters but does not score, so keyword
search is BM25 over the stored texts. The remote adapter (`remote::qdrant`) is this class
given a server URL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.inline.vector_io.qdrant.config import QdrantVectorIOConfig
from stackray.providers.utils.vector_db import (
    KeywordIndexCache,
    SyncClient,
    best_first,
    bm25_hits,
    check_query_embedding,
    chunk_text,
    chunk_uuid,
    collection_name,
    db_name,
    dump_chunk,
    is_scalar,
    load_chunk,
    split_filters,
    unique_chunks,
)

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_PAGE = 1000


def _native(key: str, value: Any) -> bool:
    return bool(_SAFE_KEY.match(key)) and is_scalar(value)


def _filter(filters: dict[str, Any]) -> Any:
    if not filters:
        return None
    from qdrant_client import models

    conditions: list[Any] = []
    for key, value in filters.items():
        if isinstance(value, float):
            conditions.append(
                models.FieldCondition(key=f"md.{key}", range=models.Range(gte=value, lte=value))
            )
        else:
            conditions.append(
                models.FieldCondition(key=f"md.{key}", match=models.MatchValue(value=value))
            )
    return models.Filter(must=conditions)


class QdrantVectorIO:
    """Vector dbs in Qdrant collections."""

    def __init__(self, config: Any, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.context = context
        self._client: Any = None
        self.embedded = self._is_embedded()
        self._sync = SyncClient(serialize=self.embedded)
        self._keyword = KeywordIndexCache() if self.embedded else None

    def _is_embedded(self) -> bool:
        return True

    def _connect(self) -> Any:
        from qdrant_client import QdrantClient

        config: QdrantVectorIOConfig = self.config
        path = Path(config.path).expanduser() if config.path else self.context.data_dir / "qdrant"
        path.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(path))

    async def initialize(self) -> None:
        self._client = await self._sync.run(self._connect)

    async def shutdown(self) -> None:
        """Close the client (local mode holds a lock on its directory until then)."""
        if self._client is not None:
            client, self._client = self._client, None
            await self._sync.run(client.close)

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        from qdrant_client import models

        name = db_name(vector_db)

        def create() -> None:
            if not self._client.collection_exists(name):
                self._client.create_collection(
                    name,
                    vectors_config=models.VectorParams(
                        size=vector_db.embedding_dimension, distance=models.Distance.COSINE
                    ),
                )

        await self._sync.run(create)

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        name = collection_name(vector_db_id)

        def drop() -> None:
            if self._client.collection_exists(name):
                self._client.delete_collection(name)

        await self._sync.run(drop)
        if self._keyword is not None:
            self._keyword.drop(name)

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        from qdrant_client import models

        items = unique_chunks(vector_db, chunks)
        if not items:
            return
        await self.register_vector_db(vector_db)
        texts = [(cid, chunk_text(chunk)) for cid, chunk in items]
        points = [
            models.PointStruct(
                id=chunk_uuid(cid),
                vector=list(chunk.embedding or []),
                payload={
                    "chunk_id": cid,
                    "text": text,
                    "chunk": dump_chunk(chunk),
                    "md": chunk.metadata,
                },
            )
            for (cid, chunk), (_, text) in zip(items, texts, strict=True)
        ]
        name = db_name(vector_db)
        await self._sync.run(self._client.upsert, name, points=points, wait=True)
        if self._keyword is not None:
            self._keyword.add(name, texts)

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        from qdrant_client import models

        if not chunk_ids:
            return
        name = db_name(vector_db)
        selector = models.PointIdsList(points=[chunk_uuid(cid) for cid in chunk_ids])
        await self._sync.run(self._client.delete, name, points_selector=selector, wait=True)
        if self._keyword is not None:
            self._keyword.remove(name, chunk_ids)

    async def query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        check_query_embedding(vector_db, embedding)
        native, post = split_filters(filters, _native)
        name = db_name(vector_db)
        if k <= 0:
            return []

        def query() -> list[ScoredChunk]:
            limit = k
            if post:  # filters Qdrant cannot evaluate are checked here, over every candidate
                limit = max(k, self._client.count(name, exact=True).count)
            result = self._client.query_points(
                name,
                query=embedding,
                limit=limit,
                query_filter=_filter(native),
                score_threshold=score_threshold,
                with_payload=["chunk"],
            )
            return [
                ScoredChunk(chunk=load_chunk(p.payload["chunk"]), score=float(p.score))
                for p in result.points
            ]

        return best_first(await self._sync.run(query), k, score_threshold, post)

    def _scroll(self, name: str, payload: list[str], query_filter: Any = None) -> list[Any]:
        records: list[Any] = []
        offset = None
        while True:
            page, offset = self._client.scroll(
                name,
                scroll_filter=query_filter,
                limit=_PAGE,
                offset=offset,
                with_payload=payload,
                with_vectors=False,
            )
            records.extend(page)
            if offset is None:
                return records

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        native, post = split_filters(filters, _native)
        name = db_name(vector_db)
        index = self._keyword.get(name) if self._keyword is not None else None

        def search() -> list[ScoredChunk]:
            use = index
            if use is None:
                texts = {
                    r.payload["chunk_id"]: r.payload.get("text", "")
                    for r in self._scroll(name, ["chunk_id", "text"])
                }
                cache = self._keyword if self._keyword is not None else KeywordIndexCache()
                use = cache.build(name, texts)
            allowed = None
            if native:
                allowed = {
                    r.payload["chunk_id"] for r in self._scroll(name, ["chunk_id"], _filter(native))
                }
            ranked = bm25_hits(query, {}, len(use) if post else k, allowed, use)
            if not ranked:
                return []
            got = self._client.retrieve(
                name, ids=[chunk_uuid(cid) for cid, _ in ranked], with_payload=["chunk_id", "chunk"]
            )
            chunks = {r.payload["chunk_id"]: load_chunk(r.payload["chunk"]) for r in got}
            return [
                ScoredChunk(chunk=chunks[cid], score=score)
                for cid, score in ranked
                if cid in chunks
            ]

        return best_first(await self._sync.run(search), k, score_threshold, post)
