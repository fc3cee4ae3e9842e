"""FilesRouter: the Files API. Metadata in the stack's metadata store, bytes in a provider.

Each file's metadata (the OpenAI file object, plus the provider holding its bytes and its
media type) is one document of the `files` table of the metadata store, so every replica
of the files deployment sees a file as soon as its upload returns, and files survive
restarts. New files go to the first files provider of the run config; a file stays with
the provider it was uploaded to.

Other APIs (vector stores, agents) read files through `deps[Api.files]` with the same
methods the routes use: `upload_file`, `list_files`, `get_file`, `get_file_content`,
`delete_file`.
"""

from __future__ import annotations

import logging
import mimetypes
import time
import uuid
from collections.abc import Callable
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConfigError, NotFoundError, PayloadTooLargeError
from stackray.api.files import (
    FileDownload,
    ListOpenAIFileResponse,
    OpenAIFileDeleteResponse,
    OpenAIFileObject,
    OpenAIFilePurpose,
    Order,
)
from stackray.providers.utils.files import DEFAULT_MAX_FILE_SIZE_BYTES, DEFAULT_TTL_SECONDS
from stackray.runtime.access_control import OPEN_POLICY, AccessPolicy, Action
from stackray.runtime.config import StackConfig
from stackray.runtime.owned import OwnedDocuments, readable_page, stamp
from stackray.runtime.resolver import build_providers
from stackray.runtime.resources import access_policy
from stackray.runtime.storage import DocumentStore

logger = logging.getLogger("stackray.files")

FILES_TABLE = "files"
MAX_LIST_LIMIT = 10_000
MAX_FILENAME_CHARS = 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_OBJECT_FIELDS = tuple(OpenAIFileObject.model_fields)


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MiB"


def parse_purpose(purpose: str | OpenAIFilePurpose | None) -> OpenAIFilePurpose | None:
    if purpose is None or isinstance(purpose, OpenAIFilePurpose):
        return purpose
    try:
        return OpenAIFilePurpose(purpose)
    except ValueError:
        known = ", ".join(p.value for p in OpenAIFilePurpose)
        raise BadRequestError(
            f"purpose {purpose!r} is not supported (supported: {known})", field="purpose"
        ) from None


def guess_content_type(filename: str, declared: str | None) -> str:
    """The declared media type, unless it is missing or the generic binary one: then the
    one the file name suggests."""
    if declared and declared.split(";")[0].strip().lower() != DEFAULT_CONTENT_TYPE:
        return declared
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or declared or DEFAULT_CONTENT_TYPE


class FilesRouter:
    """Serves the Files API over one or more files providers."""

    def __init__(
        self,
        providers: dict[str, Any],
        store: DocumentStore,
        upload_provider_id: str | None = None,
        max_file_size_bytes: int = DEFAULT_MAX_FILE_SIZE_BYTES,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        policy: AccessPolicy = OPEN_POLICY,
    ) -> None:
        if not providers:
            raise ConfigError("the files API needs a files provider")
        self.providers = providers
        self.store = store
        self.upload_provider_id = upload_provider_id or next(iter(providers))
        self.max_file_size_bytes = max_file_size_bytes
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self.access = OwnedDocuments(policy, "file")

    async def health(self) -> None:
        """Raises if this router cannot serve (its store is unreachable)."""
        self.store.get("health")

    def upload_limit(self) -> int:
        """The largest upload accepted, in bytes (the gateway refuses larger bodies early)."""
        return self.max_file_size_bytes

    # ---- helpers ------------------------------------------------------------------------

    @staticmethod
    def _object(doc: dict[str, Any]) -> OpenAIFileObject:
        return OpenAIFileObject.model_validate({k: doc[k] for k in _OBJECT_FIELDS if k in doc})

    def _expired(self, doc: dict[str, Any]) -> bool:
        return int(doc["expires_at"]) <= int(self._clock())

    async def _remove(self, doc: dict[str, Any]) -> None:
        """Forget a file, then drop its bytes (a failure there leaves unreachable bytes,
        never a listed file without content)."""
        self.store.delete(doc["id"])
        provider = self.providers.get(doc.get("provider_id", ""))
        if provider is None:
            logger.warning("file %s: provider %r is gone", doc["id"], doc.get("provider_id"))
            return
        try:
            await provider.delete_content(doc["id"])
        except Exception:
            logger.exception("file %s: could not delete its content", doc["id"])

    async def _doc(self, file_id: str) -> dict[str, Any]:
        doc = self.store.get(file_id) if isinstance(file_id, str) else None
        if doc is not None and self._expired(doc):
            await self._remove(doc)
            doc = None
        return self.access.visible(doc, file_id, "file", "file_id")

    # ---- the API --------------------------------------------------------------------------

    async def upload_file(
        self,
        content: bytes,
        filename: str,
        purpose: str | OpenAIFilePurpose,
        content_type: str | None = None,
    ) -> OpenAIFileObject:
        """Store `content` as a new file."""
        checked_purpose = parse_purpose(purpose)
        if checked_purpose is None:
            raise BadRequestError("the `purpose` field is required", field="purpose")
        if not isinstance(content, bytes | bytearray):
            raise BadRequestError("the file must be bytes", field="file")
        if len(content) > self.max_file_size_bytes:
            raise PayloadTooLargeError(
                f"file {filename!r} is {_size(len(content))}; the largest upload accepted is "
                f"{_size(self.max_file_size_bytes)}",
                field="file",
            )
        # Some clients send a path as the file name: keep its last part.
        name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
        if len(name) > MAX_FILENAME_CHARS:
            raise BadRequestError(
                f"the file name has {len(name)} characters; at most {MAX_FILENAME_CHARS}",
                field="file",
            )
        now = int(self._clock())
        self.access.require_create("*")
        file = OpenAIFileObject(
            id=f"file-{uuid.uuid4().hex}",
            bytes=len(content),
            created_at=now,
            expires_at=now + self.ttl_seconds,
            filename=name,
            purpose=checked_purpose,
        )
        provider_id = self.upload_provider_id
        await self.providers[provider_id].put_content(file.id, bytes(content))
        doc = stamp(file.model_dump(mode="json"))
        doc.update(
            provider_id=provider_id,
            content_type=guess_content_type(name, content_type),
            # Orders uploads made within one second (created_at has whole seconds).
            created_ns=time.time_ns(),
        )
        try:
            self.store.put(file.id, doc)
        except BaseException:
            await self.providers[provider_id].delete_content(file.id)
            raise
        return file

    async def list_files(
        self,
        after: str | None = None,
        limit: int | None = None,
        order: str | Order | None = None,
        purpose: str | OpenAIFilePurpose | None = None,
    ) -> ListOpenAIFileResponse:
        """Files by upload time (newest first unless `order` is asc), `limit` at most."""
        if limit is None:
            limit = MAX_LIST_LIMIT
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_LIST_LIMIT
        ):
            raise BadRequestError(
                f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit!r}", field="limit"
            )
        try:
            direction = Order(order or Order.desc)
        except ValueError:
            raise BadRequestError(
                f"order must be 'asc' or 'desc', got {order!r}", field="order"
            ) from None
        checked_purpose = parse_purpose(purpose)
        where = {"purpose": checked_purpose.value} if checked_purpose else None
        docs, has_more = readable_page(
            self.store,
            lambda d: self.access.readable(d, d["id"]),
            where,
            order_by="created_ns",
            desc=direction is Order.desc,
            after=after,
            limit=limit,
        )
        files = []
        for doc in docs:
            if self._expired(doc):
                await self._remove(doc)
            else:
                files.append(self._object(doc))
        return ListOpenAIFileResponse(
            data=files,
            has_more=has_more,
            first_id=files[0].id if files else "",
            last_id=files[-1].id if files else "",
        )

    async def get_file(self, file_id: str) -> OpenAIFileObject:
        return self._object(await self._doc(file_id))

    async def download_file(self, file_id: str) -> FileDownload:
        """The file's metadata, bytes and media type (for the content route)."""
        doc = await self._doc(file_id)
        provider = self.providers.get(doc["provider_id"])
        if provider is None:
            raise NotFoundError(
                f"file {file_id!r} is held by provider {doc['provider_id']!r}, which this "
                "stack no longer has",
                field="file_id",
            )
        content = await provider.get_content(file_id)
        return FileDownload(
            file=self._object(doc),
            content=content,
            content_type=doc.get("content_type") or DEFAULT_CONTENT_TYPE,
        )

    async def get_file_content(self, file_id: str) -> bytes:
        return (await self.download_file(file_id)).content

    async def delete_file(self, file_id: str) -> OpenAIFileDeleteResponse:
        doc = await self._doc(file_id)
        self.access.require(Action.delete, doc, file_id)
        await self._remove(doc)
        return OpenAIFileDeleteResponse(id=file_id, deleted=True)


def files_store_config(stack: StackConfig) -> Any:
    """Where the `files` table lives: the `metadata_store` the files providers name (Llama
    Stack 0.2.12's localfs field), else the stack's metadata store."""
    named = {
        p.provider_id: p.config["metadata_store"]
        for p in stack.providers_of(Api.files)
        if p.config.get("metadata_store") is not None
    }
    if len({repr(sorted(v.items())) for v in named.values()}) > 1:
        raise ConfigError(
            "providers.files: the providers name different metadata_store settings "
            f"({', '.join(sorted(named))}); the files table is one, so give them one store"
        )
    if named:
        return next(iter(named.values()))
    return stack.metadata_store_config()


def open_files_store(stack: StackConfig) -> DocumentStore:
    return DocumentStore(
        files_store_config(stack),
        table=FILES_TABLE,
        indexed={"purpose": str, "created_ns": int},
    )


async def build_router(
    stack: StackConfig, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> FilesRouter:
    """The files router (`ROUTERS[Api.files]`)."""
    configured = stack.providers_of(Api.files)
    if not configured:
        raise ConfigError("the files API is served but has no provider (providers.files)")
    providers = await build_providers(stack, Api.files, deps, servers)
    first = configured[0].provider_id
    config = getattr(providers[first], "config", None)
    return FilesRouter(
        providers,
        open_files_store(stack),
        upload_provider_id=first,
        max_file_size_bytes=getattr(config, "max_file_size_bytes", DEFAULT_MAX_FILE_SIZE_BYTES),
        ttl_seconds=getattr(config, "ttl_seconds", DEFAULT_TTL_SECONDS),
        policy=access_policy(stack),
    )
