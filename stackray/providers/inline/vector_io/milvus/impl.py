"""`inline::milvus`: vector dbs as collections of Milvus Lite (pymilvus + milvus-lite).

One collection per vector db: the chunk id as primary key, the embedding (FLAT index,
cosine), the text with Milvus's analyzer and a BM25 function feeding a sparse vector
(native full-text search), the chunk as JSON and its metadata as a JSON field (so
`filters` become a native filter expression). The remote adapter (`remote::milvus`) is
this class given a server URI and token.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from stackray.api.errors import BadRequestError
from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.inline.vector_io.milvus.config import MilvusVectorIOConfig
from stackray.providers.utils.keyword import tokenize
from stackray.providers.utils.vector_db import (
    SyncClient,
    best_first,
    check_query_embedding,
    chunk_text,
    collection_name,
    db_name,
    is_scalar,
    load_chunk,
    split_filters,
    unique_chunks,
)

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_\-. ]+$")
_MAX_TEXT_BYTES = 65535
_MAX_LIMIT = 16384  # Milvus's largest search limit


def _native(key: str, value: Any) -> bool:
    return bool(_SAFE_KEY.match(key)) and is_scalar(value)


def _expr(filters: dict[str, Any]) -> str:
    """A Milvus boolean expression over the JSON field `metadata` (values JSON-encoded)."""
    return " and ".join(
        f"metadata[{json.dumps(key)}] == {json.dumps(value, ensure_ascii=False)}"
        for key, value in filters.items()
    )


# pymilvus pings its server every 10 s, idle or not; Milvus Lite's gRPC server allows a
# ping without data once in 5 minutes and answers more with GOAWAY "too_many_pings"
# (logged by gRPC on every idle spell, measured within 45 s). The server is a local
# process: no keepalive is needed at all.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}


class MilvusVectorIO:
    """Vector dbs in Milvus collections."""

    def __init__(self, config: Any, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.context = context
        self._client: Any = None
        # Milvus Lite runs a local server process; one call at a time keeps it simple.
        self._sync = SyncClient(serialize=True)

    def _connect(self) -> Any:
        from pymilvus import MilvusClient

        config: MilvusVectorIOConfig = self.config
        path = (
            Path(config.db_path).expanduser()
            if config.db_path
            else self.context.data_dir / "milvus.db"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        return MilvusClient(str(path), grpc_options=GRPC_OPTIONS)

    async def initialize(self) -> None:
        self._client = await self._sync.run(self._connect)

    async def shutdown(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await self._sync.run(client.close)

    def _create(self, name: str, dimension: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        client = self._client
        if client.has_collection(name):
            return
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("text", DataType.VARCHAR, max_length=_MAX_TEXT_BYTES, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("chunk", DataType.JSON)
        schema.add_field("metadata", DataType.JSON)
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="COSINE")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection(
            name,
            schema=schema,
            index_params=index,
            consistency_level=self.config.consistency_level,
        )

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        await self._sync.run(self._create, db_name(vector_db), vector_db.embedding_dimension)

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        name = collection_name(vector_db_id)

        def drop() -> None:
            if self._client.has_collection(name):
                self._client.drop_collection(name)

        await self._sync.run(drop)

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        items = unique_chunks(vector_db, chunks)
        if not items:
            return
        rows = []
        for cid, chunk in items:
            text = chunk_text(chunk)
            if len(text.encode()) > _MAX_TEXT_BYTES:
                raise BadRequestError(
                    f"chunk {cid!r} has more than {_MAX_TEXT_BYTES} bytes of text, "
                    "the most a Milvus text field holds",
                    field="chunks",
                )
            rows.append(
                {
                    "id": cid,
                    "vector": chunk.embedding,
                    "text": text,
                    "chunk": chunk.model_dump(
                        mode="json", exclude={"embedding"}, exclude_none=True
                    ),
                    "metadata": chunk.metadata,
                }
            )
        name = db_name(vector_db)

        def upsert() -> None:
            self._create(name, vector_db.embedding_dimension)
            self._client.upsert(name, rows)

        await self._sync.run(upsert)

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        if not chunk_ids:
            return
        await self._sync.run(self._client.delete, db_name(vector_db), ids=list(chunk_ids))

    def _count(self, name: str) -> int:
        rows = self._client.query(name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def _search(
        self,
        name: str,
        data: Any,
        field: str,
        metric: str,
        k: int,
        native: dict[str, Any],
        post: dict[str, Any],
    ) -> list[tuple[Chunk, float]]:
        limit = k
        if post:  # filters Milvus cannot evaluate are checked here, over every candidate
            limit = max(k, self._count(name))
        limit = min(limit, _MAX_LIMIT)
        if limit <= 0:
            return []
        result = self._client.search(
            name,
            data=[data],
            anns_field=field,
            limit=limit,
            filter=_expr(native),
            output_fields=["chunk"],
            search_params={"metric_type": metric},
        )
        return [(load_chunk(hit["entity"]["chunk"]), float(hit["distance"])) for hit in result[0]]

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
        hits = await self._sync.run(
            self._search, db_name(vector_db), embedding, "vector", "COSINE", k, native, post
        )
        # For COSINE, Milvus's "distance" is the cosine similarity.
        scored = [ScoredChunk(chunk=chunk, score=score) for chunk, score in hits]
        return best_first(scored, k, score_threshold, post)

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        if not tokenize(query):
            return []
        native, post = split_filters(filters, _native)
        hits = await self._sync.run(
            self._search, db_name(vector_db), query, "sparse", "BM25", k, native, post
        )
        # Milvus Lite reports BM25 scores as negative distances: keep their magnitude.
        scored = [ScoredChunk(chunk=chunk, score=abs(score)) for chunk, score in hits]
        return best_first(scored, k, score_threshold, post)
