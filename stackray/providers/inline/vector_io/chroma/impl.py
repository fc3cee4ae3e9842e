"""`inline::chromadb`: vector dbs as collections of an embedded Chroma database.

One Chroma collection per vector db (cosine space). Chroma stores the embedding, the
chunk's text as the document, and as metadata the chunk JSON plus the chunk's scalar
metadata under ``md_<key>`` (so `filters` become a native ``where``). Chroma has no
keyword scoring, so keyword search is BM25 over the stored documents. The remote
adapter (`remote::chromadb`) is this class over an HTTP client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.inline.vector_io.chroma.config import ChromaVectorIOConfig
from stackray.providers.utils.vector_db import (
    KeywordIndexCache,
    SyncClient,
    best_first,
    bm25_hits,
    check_query_embedding,
    chunk_text,
    collection_name,
    db_name,
    dump_chunk,
    is_scalar,
    load_chunk,
    scalar_metadata,
    split_filters,
    unique_chunks,
)

_CHUNK = "_chunk"
_MD = "md_"


def _where(filters: dict[str, Any]) -> dict[str, Any] | None:
    clauses = [{f"{_MD}{key}": {"$eq": value}} for key, value in filters.items()]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class ChromaVectorIO:
    """Vector dbs in Chroma collections."""

    embedded = True

    def __init__(self, config: Any, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.context = context
        self._client: Any = None
        self._sync = SyncClient(serialize=self.embedded)
        self._keyword = KeywordIndexCache() if self.embedded else None

    def _connect(self) -> Any:
        import chromadb

        config: ChromaVectorIOConfig = self.config
        path = (
            Path(config.db_path).expanduser()
            if config.db_path
            else self.context.data_dir / "chroma"
        )
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(
            path=str(path), settings=chromadb.Settings(anonymized_telemetry=False)
        )

    async def initialize(self) -> None:
        self._client = await self._sync.run(self._connect)

    async def shutdown(self) -> None:
        self._client = None

    def _collection(self, vector_db: VectorDB) -> Any:
        return self._client.get_or_create_collection(
            db_name(vector_db),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        await self._sync.run(self._collection, vector_db)

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        name = collection_name(vector_db_id)

        def drop() -> None:
            try:
                self._client.delete_collection(name)
            except Exception as e:  # absent collection: nothing to delete
                if "does not exist" not in str(e) and "NotFound" not in type(e).__name__:
                    raise

        await self._sync.run(drop)
        if self._keyword is not None:
            self._keyword.drop(name)

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        items = unique_chunks(vector_db, chunks)
        if not items:
            return
        texts = [(cid, chunk_text(chunk)) for cid, chunk in items]

        def upsert() -> None:
            self._collection(vector_db).upsert(
                ids=[cid for cid, _ in items],
                embeddings=[chunk.embedding for _, chunk in items],
                documents=[text for _, text in texts],
                metadatas=[
                    {
                        _CHUNK: dump_chunk(chunk),
                        **{f"{_MD}{k}": v for k, v in scalar_metadata(chunk.metadata).items()},
                    }
                    for _, chunk in items
                ],
            )

        await self._sync.run(upsert)
        if self._keyword is not None:
            self._keyword.add(db_name(vector_db), texts)

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        if not chunk_ids:
            return
        await self._sync.run(lambda: self._collection(vector_db).delete(ids=list(chunk_ids)))
        if self._keyword is not None:
            self._keyword.remove(db_name(vector_db), chunk_ids)

    async def query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        check_query_embedding(vector_db, embedding)
        native, post = split_filters(filters, lambda _k, v: is_scalar(v))

        def query() -> list[ScoredChunk]:
            collection = self._collection(vector_db)
            count = collection.count()
            if count == 0 or k <= 0:
                return []
            # Filters Chroma cannot evaluate are checked here, over every candidate.
            n = count if post else min(k, count)
            result = collection.query(
                query_embeddings=[embedding],
                n_results=n,
                where=_where(native),
                include=["metadatas", "distances"],
            )
            return [
                ScoredChunk(chunk=load_chunk(meta[_CHUNK]), score=1.0 - float(distance))
                for meta, distance in zip(
                    result["metadatas"][0], result["distances"][0], strict=True
                )
            ]

        return best_first(await self._sync.run(query), k, score_threshold, post)

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        native, post = split_filters(filters, lambda _k, v: is_scalar(v))
        name = db_name(vector_db)
        index = self._keyword.get(name) if self._keyword is not None else None

        def search() -> list[ScoredChunk]:
            collection = self._collection(vector_db)
            use = index
            if use is None:
                stored = collection.get(include=["documents"])
                texts = {
                    cid: doc or ""
                    for cid, doc in zip(stored["ids"], stored["documents"], strict=True)
                }
                use = (
                    self._keyword.build(name, texts)
                    if self._keyword is not None
                    else KeywordIndexCache().build(name, texts)
                )
            allowed = None
            if native:
                allowed = set(collection.get(where=_where(native), include=[])["ids"])
            ranked = bm25_hits(query, {}, len(use) if post else k, allowed, use)
            if not ranked:
                return []
            got = collection.get(ids=[cid for cid, _ in ranked], include=["metadatas"])
            chunks = {
                cid: load_chunk(meta[_CHUNK])
                for cid, meta in zip(got["ids"], got["metadatas"], strict=True)
            }
            return [
                ScoredChunk(chunk=chunks[cid], score=score)
                for cid, score in ranked
                if cid in chunks
            ]

        return best_first(await self._sync.run(search), k, score_threshold, post)
