"""The VectorIO and VectorDBs APIs: vector databases, chunk insert and query.

Contract models (field for field per Llama Stack 0.2.12) plus `VectorIOProvider`, the
protocol every vector IO provider implements. The router (one per `vector_io`
deployment replica) owns the vector_dbs registry, computes embeddings through the
Inference API for chunks that come without one, and calls the provider of the vector db.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Protocol

from pydantic import Field

from stackray.api.common import ApiModel, InterleavedContent, JsonValue, ResourceId
from stackray.api.datatypes import Api, ResourceType
from stackray.api.routes import Route


class Chunk(ApiModel):
    """A piece of a document: its content, metadata (``document_id`` names its document),
    and optionally its embedding."""

    content: InterleavedContent
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    embedding: list[float] | None = None


class VectorDB(ApiModel):
    """A registered vector database."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.vector_db] = ResourceType.vector_db
    embedding_model: str
    embedding_dimension: int


class RegisterVectorDbRequest(ApiModel):
    vector_db_id: ResourceId
    embedding_model: str
    embedding_dimension: int | None = None
    provider_id: str | None = None
    provider_vector_db_id: str | None = None


class ListVectorDBsResponse(ApiModel):
    data: list[VectorDB]


class InsertChunksRequest(ApiModel):
    vector_db_id: str
    chunks: list[Chunk]
    ttl_seconds: int | None = None


class QueryChunksRequest(ApiModel):
    vector_db_id: str
    query: InterleavedContent
    params: dict[str, JsonValue] | None = None


class QueryChunksResponse(ApiModel):
    chunks: list[Chunk]
    scores: list[float]


class SearchMode(str, Enum):
    vector = "vector"
    keyword = "keyword"
    hybrid = "hybrid"


class ScoredChunk(ApiModel):
    """A provider's search hit: the chunk and its score (higher is better)."""

    chunk: Chunk
    score: float


class VectorIOProvider(Protocol):
    """What a vector IO provider implements.

    Scores are "higher is better": cosine similarity (or the database's own similarity)
    for vector search, a BM25-style score for keyword search. `filters` is a mapping of
    metadata key -> required value (all must match); a provider that cannot filter
    natively filters the hits itself. Everything a provider keeps survives a restart
    (index files under its data directory, or the external database).

    A provider names a vector db's collection by ``vector_db.provider_resource_id`` (the
    router always sets it: ``provider_vector_db_id`` or else the ``vector_db_id``);
    `unregister_vector_db` receives that name.
    """

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        """Create the collection/index for `vector_db` (idempotent)."""

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        """Delete the collection/index and all its data (no error if it does not exist)."""

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        """Store chunks; every chunk has its `embedding` set by the router. A chunk with
        the same ``metadata['chunk_id']`` as a stored one replaces it."""

    async def query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        """The `k` nearest chunks scoring at least `score_threshold`, best first."""
        ...

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        """The `k` best keyword (BM25-style) matches for `query`, best first."""
        ...

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        """Remove the chunks whose ``metadata['chunk_id']`` is in `chunk_ids`."""


class VectorIOApi(Protocol):
    """The VectorIO API as another API calls it (the RAG tool, agents' memory)."""

    async def register_vector_db(self, request: RegisterVectorDbRequest) -> VectorDB: ...

    async def get_vector_db(self, vector_db_id: str) -> VectorDB: ...

    async def unregister_vector_db(self, vector_db_id: str) -> None: ...

    async def insert_chunks(self, request: InsertChunksRequest) -> None: ...

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse: ...


ROUTES = (
    Route(
        "GET", "/v1/vector-dbs", Api.vector_dbs, "list_vector_dbs", returns=ListVectorDBsResponse
    ),
    Route(
        "POST",
        "/v1/vector-dbs",
        Api.vector_dbs,
        "register_vector_db",
        body=RegisterVectorDbRequest,
        returns=VectorDB,
    ),
    Route(
        "GET",
        "/v1/vector-dbs/{vector_db_id:path}",
        Api.vector_dbs,
        "get_vector_db",
        returns=VectorDB,
    ),
    Route(
        "DELETE",
        "/v1/vector-dbs/{vector_db_id:path}",
        Api.vector_dbs,
        "unregister_vector_db",
        empty=True,
    ),
    Route(
        "POST",
        "/v1/vector-io/insert",
        Api.vector_io,
        "insert_chunks",
        body=InsertChunksRequest,
        empty=True,
    ),
    Route(
        "POST",
        "/v1/vector-io/query",
        Api.vector_io,
        "query_chunks",
        body=QueryChunksRequest,
        returns=QueryChunksResponse,
    ),
)
