"""The Files API: files uploaded once and used by other APIs (vector stores, agents).

Contract models (field for field per Llama Stack 0.2.12, which follows OpenAI's Files
API) plus `FilesProvider`, the protocol every files provider implements. The router (one
per `files` deployment replica) keeps each file's metadata in the stack's metadata store
and its bytes in a provider (a local directory, an S3 bucket).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol

from pydantic import Field

from stackray.api.common import ApiModel
from stackray.api.datatypes import Api
from stackray.api.routes import Param, Route


class OpenAIFilePurpose(str, Enum):
    """What a file is for. The contract (Llama Stack 0.2.12) knows one purpose."""

    assistants = "assistants"


class Order(str, Enum):
    """Sort order of a listing."""

    asc = "asc"
    desc = "desc"


class OpenAIFileObject(ApiModel):
    """A stored file, as OpenAI's Files API describes it."""

    object: Literal["file"] = Field(default="file", description='Always "file".')
    id: str = Field(description="The file id, used by the other endpoints.")
    bytes: int = Field(description="Size of the file in bytes.")
    created_at: int = Field(description="Unix time (seconds) of the upload.")
    expires_at: int = Field(description="Unix time (seconds) after which the file is gone.")
    filename: str = Field(description="The name the file was uploaded with.")
    purpose: OpenAIFilePurpose = Field(description="What the file is for.")


class ListOpenAIFileResponse(ApiModel):
    """One page of files."""

    data: list[OpenAIFileObject]
    has_more: bool
    first_id: str
    last_id: str
    object: Literal["list"] = "list"


class OpenAIFileDeleteResponse(ApiModel):
    """The answer to a delete."""

    id: str
    object: Literal["file"] = "file"
    deleted: bool


@dataclass(frozen=True)
class FileDownload:
    """A file's metadata, bytes and media type (what the content route returns)."""

    file: OpenAIFileObject
    content: bytes
    content_type: str


class FilesProvider(Protocol):
    """Where the bytes of files live. Keys are file ids made by the router (``file-`` and
    hex digits); metadata is the router's business. Everything stored survives a restart.

    A provider's `config` may set `max_file_size_bytes` and `ttl_seconds` (see
    `stackray.providers.utils.files.FilesProviderConfig`); the router enforces them.
    """

    async def put_content(self, file_id: str, content: bytes) -> None:
        """Store `content` under `file_id`, replacing anything stored there."""

    async def get_content(self, file_id: str) -> bytes:
        """The bytes stored under `file_id`; `NotFoundError` if there are none."""
        ...

    async def delete_content(self, file_id: str) -> None:
        """Remove the bytes stored under `file_id` (no error if there are none)."""


class FilesApi(Protocol):
    """The Files API as another API calls it (vector stores read attached files)."""

    async def get_file(self, file_id: str) -> OpenAIFileObject: ...

    async def download_file(self, file_id: str) -> FileDownload: ...


ROUTES = (
    # A multipart body: parsed by the gateway's handler (a too-large upload is refused before it is read).
    Route(
        "POST",
        "/files",
        Api.files,
        "upload_file",
        openai=True,
        returns=OpenAIFileObject,
        handler="upload_file",
    ),
    Route(
        "GET",
        "/files",
        Api.files,
        "list_files",
        query=(Param("after"), Param("limit", int | None), Param("order"), Param("purpose")),
        openai=True,
        returns=ListOpenAIFileResponse,
    ),
    Route("GET", "/files/{file_id}", Api.files, "get_file", openai=True, returns=OpenAIFileObject),
    Route(
        "DELETE",
        "/files/{file_id}",
        Api.files,
        "delete_file",
        openai=True,
        returns=OpenAIFileDeleteResponse,
    ),
    Route(
        "GET",
        "/files/{file_id}/content",
        Api.files,
        "download_file",
        openai=True,
        handler="file_content",
    ),
)
