"""The RAG tool API (`/v1/tool-runtime/rag-tool/insert|query`, tool group ``builtin::rag``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from stackray.api.common import URL, ApiModel, InterleavedContent, InterleavedContentItem, JsonValue
from stackray.api.datatypes import Api
from stackray.api.routes import Route

DEFAULT_CHUNK_TEMPLATE = "Result {index}\nContent: {chunk.content}\nMetadata: {metadata}\n"


class RAGDocument(ApiModel):
    document_id: str
    content: str | InterleavedContentItem | list[InterleavedContentItem] | URL
    mime_type: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class InsertRequest(ApiModel):
    documents: list[RAGDocument]
    vector_db_id: str
    chunk_size_in_tokens: int = Field(default=512, ge=16, le=8192)


class DefaultRAGQueryGeneratorConfig(ApiModel):
    type: Literal["default"] = "default"
    separator: str = " "


class LLMRAGQueryGeneratorConfig(ApiModel):
    type: Literal["llm"] = "llm"
    model: str
    template: str


RAGQueryGeneratorConfig = Annotated[
    DefaultRAGQueryGeneratorConfig | LLMRAGQueryGeneratorConfig, Field(discriminator="type")
]


class RRFRanker(ApiModel):
    type: Literal["rrf"] = "rrf"
    impact_factor: float = Field(default=60.0, gt=0)


class WeightedRanker(ApiModel):
    type: Literal["weighted"] = "weighted"
    alpha: float = Field(default=0.5, ge=0, le=1)


Ranker = Annotated[RRFRanker | WeightedRanker, Field(discriminator="type")]


class RAGQueryConfig(ApiModel):
    query_generator_config: RAGQueryGeneratorConfig = Field(
        default_factory=DefaultRAGQueryGeneratorConfig
    )
    max_tokens_in_context: int = Field(default=4096, ge=1)
    max_chunks: int = Field(default=5, ge=1)
    chunk_template: str = DEFAULT_CHUNK_TEMPLATE
    mode: Literal["vector", "keyword", "hybrid"] | None = None
    ranker: Ranker | None = None


class QueryRequest(ApiModel):
    content: InterleavedContent
    vector_db_ids: list[str]
    query_config: RAGQueryConfig | None = None


class RAGQueryResult(ApiModel):
    content: InterleavedContent | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


ROUTES = (
    Route(
        "POST",
        "/v1/tool-runtime/rag-tool/insert",
        Api.tool_runtime,
        "rag_tool_insert",
        body=InsertRequest,
        empty=True,
    ),
    Route(
        "POST",
        "/v1/tool-runtime/rag-tool/query",
        Api.tool_runtime,
        "rag_tool_query",
        body=QueryRequest,
        returns=RAGQueryResult,
    ),
)
