"""OpenAI-compatible vector stores (`/v1/openai/v1/vector_stores`), served by the vector_io
deployment on top of vector dbs: a vector store is a vector db plus the files attached to it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from stackray.api.common import ApiModel, JsonValue
from stackray.api.datatypes import Api
from stackray.api.routes import Param, Route


class VectorStoreChunkingStrategyAuto(ApiModel):
    type: Literal["auto"] = "auto"


class VectorStoreChunkingStrategyStaticConfig(ApiModel):
    chunk_overlap_tokens: int = Field(default=400, ge=0)
    max_chunk_size_tokens: int = Field(default=800, ge=100, le=4096)


class VectorStoreChunkingStrategyStatic(ApiModel):
    type: Literal["static"] = "static"
    static: VectorStoreChunkingStrategyStaticConfig


VectorStoreChunkingStrategy = Annotated[
    VectorStoreChunkingStrategyAuto | VectorStoreChunkingStrategyStatic,
    Field(discriminator="type"),
]

# What `auto` means here (as OpenAI documents it).
AUTO_CHUNK_SIZE_TOKENS = 800
AUTO_CHUNK_OVERLAP_TOKENS = 400


class OpenaiCreateVectorStoreRequest(ApiModel):
    name: str | None = None
    file_ids: list[str] | None = None
    expires_after: dict[str, JsonValue] | None = None
    chunking_strategy: VectorStoreChunkingStrategy | None = None
    metadata: dict[str, JsonValue] | None = None
    embedding_model: str | None = None
    embedding_dimension: int | None = None
    provider_id: str | None = None
    provider_vector_db_id: str | None = None


class OpenaiUpdateVectorStoreRequest(ApiModel):
    name: str | None = None
    expires_after: dict[str, JsonValue] | None = None
    metadata: dict[str, JsonValue] | None = None


class VectorStoreFileCounts(ApiModel):
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    in_progress: int = 0
    total: int = 0


class VectorStoreObject(ApiModel):
    id: str
    object: str = "vector_store"
    created_at: int
    name: str | None = None
    usage_bytes: int = 0
    file_counts: VectorStoreFileCounts
    status: str = "completed"
    expires_after: dict[str, JsonValue] | None = None
    expires_at: int | None = None
    last_active_at: int | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class VectorStoreListResponse(ApiModel):
    object: str = "list"
    data: list[VectorStoreObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VectorStoreDeleteResponse(ApiModel):
    id: str
    object: str = "vector_store.deleted"
    deleted: bool = True


class OpenaiAttachFileToVectorStoreRequest(ApiModel):
    file_id: str
    attributes: dict[str, JsonValue] | None = None
    chunking_strategy: VectorStoreChunkingStrategy | None = None


class OpenaiUpdateVectorStoreFileRequest(ApiModel):
    attributes: dict[str, JsonValue]


class VectorStoreFileLastError(ApiModel):
    """Why a file failed. `unsupported_file` (a file whose content has no text the stack
    can read) is OpenAI's code, beyond the contract's two."""

    code: Literal["server_error", "rate_limit_exceeded", "unsupported_file"]
    message: str


VectorStoreFileStatus = Literal["completed", "in_progress", "cancelled", "failed"]


class VectorStoreFileObject(ApiModel):
    id: str
    object: str = "vector_store.file"
    attributes: dict[str, JsonValue] = Field(default_factory=dict)
    chunking_strategy: VectorStoreChunkingStrategy
    created_at: int
    last_error: VectorStoreFileLastError | None = None
    status: VectorStoreFileStatus
    usage_bytes: int = 0
    vector_store_id: str


class VectorStoreListFilesResponse(ApiModel):
    object: str = "list"
    data: list[VectorStoreFileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class VectorStoreFileDeleteResponse(ApiModel):
    id: str
    object: str = "vector_store.file.deleted"
    deleted: bool = True


class VectorStoreContent(ApiModel):
    type: Literal["text"] = "text"
    text: str


class VectorStoreFileContentsResponse(ApiModel):
    """The contract's fields, plus `data`/`has_more` (the same content as a page: what the
    `openai` SDK reads)."""

    file_id: str
    filename: str
    attributes: dict[str, JsonValue] = Field(default_factory=dict)
    content: list[VectorStoreContent]
    object: str = "vector_store.file_content.page"
    data: list[VectorStoreContent] | None = None
    has_more: bool = False


class SearchRankingOptions(ApiModel):
    ranker: str | None = None
    score_threshold: float = 0.0


class OpenaiSearchVectorStoreRequest(ApiModel):
    query: str | list[str]
    filters: dict[str, JsonValue] | None = None
    max_num_results: int = Field(default=10, ge=1, le=50)
    ranking_options: SearchRankingOptions | None = None
    rewrite_query: bool = False
    search_mode: Literal["vector", "keyword", "hybrid"] | None = None


class VectorStoreSearchResponse(ApiModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any] | None = None
    content: list[VectorStoreContent]


class VectorStoreSearchResponsePage(ApiModel):
    object: str = "vector_store.search_results.page"
    search_query: str
    data: list[VectorStoreSearchResponse]
    has_more: bool = False
    next_page: str | None = None


_STORES = "/vector_stores"
_STORE = _STORES + "/{vector_store_id}"
_FILES = _STORE + "/files"
_FILE = _FILES + "/{file_id}"
_PAGE = (
    Param("limit", int | None, 20),
    Param("order", str | None, "desc"),
    Param("after"),
    Param("before"),
)

ROUTES = (
    Route(
        "POST",
        _STORES,
        Api.vector_io,
        "openai_create_vector_store",
        body=OpenaiCreateVectorStoreRequest,
        openai=True,
        returns=VectorStoreObject,
    ),
    Route(
        "GET",
        _STORES,
        Api.vector_io,
        "openai_list_vector_stores",
        query=_PAGE,
        openai=True,
        returns=VectorStoreListResponse,
    ),
    Route(
        "GET",
        _STORE,
        Api.vector_io,
        "openai_retrieve_vector_store",
        openai=True,
        returns=VectorStoreObject,
    ),
    Route(
        "POST",
        _STORE,
        Api.vector_io,
        "openai_update_vector_store",
        body=OpenaiUpdateVectorStoreRequest,
        openai=True,
        returns=VectorStoreObject,
    ),
    Route(
        "DELETE",
        _STORE,
        Api.vector_io,
        "openai_delete_vector_store",
        openai=True,
        returns=VectorStoreDeleteResponse,
    ),
    Route(
        "POST",
        _STORE + "/search",
        Api.vector_io,
        "openai_search_vector_store",
        body=OpenaiSearchVectorStoreRequest,
        openai=True,
        returns=VectorStoreSearchResponsePage,
    ),
    Route(
        "POST",
        _FILES,
        Api.vector_io,
        "openai_attach_file_to_vector_store",
        body=OpenaiAttachFileToVectorStoreRequest,
        openai=True,
        returns=VectorStoreFileObject,
    ),
    Route(
        "GET",
        _FILES,
        Api.vector_io,
        "openai_list_files_in_vector_store",
        query=(*_PAGE, Param("filter")),
        openai=True,
        returns=VectorStoreListFilesResponse,
    ),
    Route(
        "GET",
        _FILE,
        Api.vector_io,
        "openai_retrieve_vector_store_file",
        openai=True,
        returns=VectorStoreFileObject,
    ),
    Route(
        "POST",
        _FILE,
        Api.vector_io,
        "openai_update_vector_store_file",
        body=OpenaiUpdateVectorStoreFileRequest,
        openai=True,
        returns=VectorStoreFileObject,
    ),
    Route(
        "DELETE",
        _FILE,
        Api.vector_io,
        "openai_delete_vector_store_file",
        openai=True,
        returns=VectorStoreFileDeleteResponse,
    ),
    Route(
        "GET",
        _FILE + "/content",
        Api.vector_io,
        "openai_retrieve_vector_store_file_contents",
        openai=True,
        returns=VectorStoreFileContentsResponse,
    ),
)
