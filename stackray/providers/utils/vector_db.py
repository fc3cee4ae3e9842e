"""Helpers shared by the vector IO providers backed by a vector database client
(Chroma, Qdrant, Milvus, Weaviate).

Every such provider stores, per chunk: its id (``metadata['chunk_id']``), its embedding,
its text (for keyword search), its metadata (for native filters) and the chunk itself as
JSON without the embedding (what queries return). Database clients are synchronous; their
calls run in a worker thread (`SyncClient`), serialized for embedded databases.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from stackray.api.common import interleaved_content_as_str
from stackray.api.errors import BadRequestError
from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.utils.keyword import BM25Index

T = TypeVar("T")

Scalar = str | int | float | bool

# A fixed namespace so that a chunk id always maps to the same UUID (Qdrant, Weaviate).
_CHUNK_NAMESPACE = uuid.UUID("6d1f3a52-3c1e-4e0e-9b8c-1f0a2b3c4d5e")


def chunk_id_of(chunk: Chunk) -> str:
    """The chunk's id: ``metadata['chunk_id']`` (set by the router), else one derived from
    its content and document, so that re-inserting the same chunk replaces it."""
    cid = chunk.metadata.get("chunk_id")
    if cid is not None and str(cid):
        return str(cid)
    basis = json.dumps(
        [chunk.metadata.get("document_id"), chunk_text(chunk)], ensure_ascii=False, default=str
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def chunk_uuid(chunk_id: str) -> str:
    """A stable UUID for a chunk id, for databases whose point ids must be UUIDs."""
    return str(uuid.uuid5(_CHUNK_NAMESPACE, chunk_id))


def chunk_text(chunk: Chunk) -> str:
    return interleaved_content_as_str(chunk.content)


def dump_chunk(chunk: Chunk) -> str:
    """The chunk as JSON, without its embedding (the database keeps that)."""
    return chunk.model_dump_json(exclude={"embedding"}, exclude_none=True)


def load_chunk(data: str | dict[str, Any]) -> Chunk:
    if isinstance(data, str):
        return Chunk.model_validate_json(data)
    return Chunk.model_validate(data)


def unique_chunks(vector_db: VectorDB, chunks: list[Chunk]) -> list[tuple[str, Chunk]]:
    """(chunk id, chunk) pairs; of chunks sharing an id the last one wins. Checked before
    anything is written: every chunk has an embedding of the vector db's dimension."""
    by_id: dict[str, Chunk] = {}
    for i, chunk in enumerate(chunks):
        if chunk.embedding is None:
            raise BadRequestError(f"chunks[{i}] has no embedding", field=f"chunks[{i}].embedding")
        if len(chunk.embedding) != vector_db.embedding_dimension:
            raise BadRequestError(
                f"chunks[{i}].embedding has {len(chunk.embedding)} dimensions; vector db "
                f"{vector_db.identifier!r} has {vector_db.embedding_dimension}",
                field=f"chunks[{i}].embedding",
            )
        by_id[chunk_id_of(chunk)] = chunk
    return list(by_id.items())


def check_query_embedding(vector_db: VectorDB, embedding: list[float]) -> None:
    if len(embedding) != vector_db.embedding_dimension:
        raise BadRequestError(
            f"the query embedding has {len(embedding)} dimensions; vector db "
            f"{vector_db.identifier!r} has {vector_db.embedding_dimension}",
            field="query",
        )


def collection_name(identifier: str, prefix: str = "vdb_") -> str:
    """A collection name valid in Chroma, Qdrant, Milvus and (with a capital prefix)
    Weaviate: letters, digits and ``_``, unique per identifier thanks to a hash suffix."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", identifier)[:48]
    digest = hashlib.sha1(identifier.encode()).hexdigest()[:8]
    return f"{prefix}{cleaned}_{digest}"


def db_name(vector_db: VectorDB, prefix: str = "vdb_") -> str:
    return collection_name(vector_db.provider_resource_id or vector_db.identifier, prefix)


def is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def value_equals(value: Any, wanted: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    return bool(value == wanted)


def matches_filters(metadata: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    if not filters:
        return True
    return all(key in metadata and value_equals(metadata[key], v) for key, v in filters.items())


def split_filters(
    filters: dict[str, Any] | None, native: Callable[[str, Any], bool]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(filters the database evaluates, filters checked on the returned chunks)."""
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        (theirs if native(key, value) else ours)[key] = value
    return theirs, ours


def scalar_metadata(metadata: dict[str, Any]) -> dict[str, Scalar]:
    """The metadata entries a database can index and filter on."""
    return {k: v for k, v in metadata.items() if is_scalar(v)}


def best_first(
    hits: Iterable[ScoredChunk],
    k: int,
    score_threshold: float,
    post_filters: dict[str, Any] | None = None,
) -> list[ScoredChunk]:
    """Hits passing the threshold and the filters the database did not apply, best first."""
    kept = [
        h
        for h in hits
        if h.score >= score_threshold and matches_filters(h.chunk.metadata, post_filters)
    ]
    kept.sort(key=lambda h: -h.score)
    return kept[:k]


def bm25_hits(
    query: str,
    texts: dict[str, str],
    k: int,
    allowed: set[str] | None = None,
    index: BM25Index | None = None,
) -> list[tuple[str, float]]:
    """BM25 over the stored texts of a collection (for databases without keyword scoring):
    statistics over the whole collection, candidates restricted to `allowed`."""
    if index is None:
        index = BM25Index()
        for doc_id, text in texts.items():
            index.add(doc_id, text)
    return index.search(query, k, allowed=allowed)


class SyncClient:
    """Runs a synchronous database client's calls in a worker thread, so that the event
    loop keeps serving; `serialize` makes them one at a time (embedded databases whose
    client is not thread-safe)."""

    def __init__(self, serialize: bool) -> None:
        self._lock = threading.Lock() if serialize else None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._lock is None:
            return await asyncio.to_thread(fn, *args, **kwargs)
        lock = self._lock

        def locked() -> T:
            with lock:
                return fn(*args, **kwargs)

        return await asyncio.to_thread(locked)


class KeywordIndexCache:
    """BM25 indexes kept in memory per collection, for a provider that is the only writer
    of its database (an embedded one): built from the stored texts on first use, then
    updated on every insert and delete. Remote databases may have other writers, so their
    providers rebuild the statistics per query instead."""

    def __init__(self) -> None:
        self._indexes: dict[str, BM25Index] = {}

    def get(self, name: str) -> BM25Index | None:
        return self._indexes.get(name)

    def build(self, name: str, texts: dict[str, str]) -> BM25Index:
        index = BM25Index()
        for doc_id, text in texts.items():
            index.add(doc_id, text)
        self._indexes[name] = index
        return index

    def add(self, name: str, items: Iterable[tuple[str, str]]) -> None:
        index = self._indexes.get(name)
        if index is not None:
            for doc_id, text in items:
                index.add(doc_id, text)

    def remove(self, name: str, doc_ids: Iterable[str]) -> None:
        index = self._indexes.get(name)
        if index is not None:
            for doc_id in doc_ids:
                index.remove(doc_id)

    def drop(self, name: str) -> None:
        self._indexes.pop(name, None)


def embedded_database_deployment(config: Any) -> dict[str, Any]:
    """Serve options of an embedded database's own deployment (`ProviderSpec.serve_options`).

    Embedded Chroma, Qdrant's local mode and Milvus Lite allow one process per data
    directory, so each runs in one model-server deployment that every vector_io replica
    calls; it needs no GPU and reserves no CPU (its work is short and I/O-bound)."""
    return {"ray_actor_options": {"num_cpus": 0, "num_gpus": 0}}
