"""OpenAI vector stores on top of the vector_io router.

A vector store is a vector db (same id, ``vs_...``) plus the files attached to it. The
store records and the file records live in two `DocumentStore` tables of the metadata
store, so every replica sees them at once and they survive restarts. Attaching a file reads
it through the Files API, converts it to text, chunks it by tokens, and inserts the chunks
(embedded by the router); the file record's status moves ``in_progress`` ->
``completed`` (or ``failed`` with the reason in ``last_error``). File counts are counted
from the file records, never kept as a separate number that could drift.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from stackray.api.common import interleaved_content_as_str
from stackray.api.errors import BadRequestError, NotFoundError, QuotaExceededError
from stackray.api.vector_io import (
    Chunk,
    InsertChunksRequest,
    QueryChunksRequest,
    RegisterVectorDbRequest,
)
from stackray.api.vector_stores import (
    AUTO_CHUNK_OVERLAP_TOKENS,
    AUTO_CHUNK_SIZE_TOKENS,
    OpenaiAttachFileToVectorStoreRequest,
    OpenaiCreateVectorStoreRequest,
    OpenaiSearchVectorStoreRequest,
    OpenaiUpdateVectorStoreFileRequest,
    OpenaiUpdateVectorStoreRequest,
    VectorStoreChunkingStrategyAuto,
    VectorStoreChunkingStrategyStatic,
    VectorStoreContent,
    VectorStoreDeleteResponse,
    VectorStoreFileContentsResponse,
    VectorStoreFileCounts,
    VectorStoreFileDeleteResponse,
    VectorStoreFileLastError,
    VectorStoreFileObject,
    VectorStoreListFilesResponse,
    VectorStoreListResponse,
    VectorStoreObject,
    VectorStoreSearchResponse,
    VectorStoreSearchResponsePage,
)
from stackray.runtime.access_control import Action
from stackray.runtime.owned import readable_page
from stackray.runtime.storage import DocumentStore

_STATUSES = ("completed", "in_progress", "cancelled", "failed")
# Keys of a file record that are ours, not the API object's.
_PRIVATE = ("key", "chunk_ids", "filename")


def open_vector_store_tables(config: Any) -> tuple[DocumentStore, DocumentStore]:
    stores = DocumentStore(config, table="vector_stores", indexed={"created_at": int})
    files = DocumentStore(
        config,
        table="vector_store_files",
        indexed={"vector_store_id": str, "created_at": int, "status": str},
    )
    return stores, files


def _chunking(strategy: Any) -> tuple[int, int]:
    if isinstance(strategy, VectorStoreChunkingStrategyStatic):
        size = strategy.static.max_chunk_size_tokens
        overlap = strategy.static.chunk_overlap_tokens
        if overlap > size // 2:
            raise BadRequestError(
                "chunk_overlap_tokens must not exceed half of max_chunk_size_tokens",
                field="chunking_strategy.static.chunk_overlap_tokens",
            )
        return size, overlap
    return AUTO_CHUNK_SIZE_TOKENS, AUTO_CHUNK_OVERLAP_TOKENS


def _openai_filters(filters: dict[str, Any] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split OpenAI search filters into equality filters (passed to the provider) and the
    rest (applied to the hits here)."""
    if not filters:
        return {}, []
    if "type" not in filters:  # a plain mapping key -> value
        return dict(filters), []
    kind = filters.get("type")
    if kind == "eq" and "key" in filters:
        return {str(filters["key"]): filters.get("value")}, []
    if kind == "and":
        eq: dict[str, Any] = {}
        rest: list[dict[str, Any]] = []
        for sub in filters.get("filters") or []:
            if not isinstance(sub, dict):
                raise BadRequestError("each filter must be an object", field="filters")
            e, r = _openai_filters(sub)
            eq.update(e)
            rest.extend(r)
        return eq, rest
    if kind in ("ne", "gt", "gte", "lt", "lte", "in", "nin", "or"):
        return {}, [filters]
    raise BadRequestError(f"unknown filter type {kind!r}", field="filters.type")


def _matches(filt: dict[str, Any], attrs: dict[str, Any]) -> bool:
    kind = filt.get("type")
    if kind in ("and", "or"):
        results = [_matches(f, attrs) for f in filt.get("filters") or []]
        return all(results) if kind == "and" else any(results)
    key, value = filt.get("key"), filt.get("value")
    have = attrs.get(str(key))
    try:
        if kind == "eq":
            return bool(have == value)
        if kind == "ne":
            return bool(have != value)
        if kind == "in":
            return have in (value or [])
        if kind == "nin":
            return have not in (value or [])
        if have is None:
            return False
        if kind == "gt":
            return bool(have > value)
        if kind == "gte":
            return bool(have >= value)
        if kind == "lt":
            return bool(have < value)
        if kind == "lte":
            return bool(have <= value)
    except TypeError:
        return False
    raise BadRequestError(f"unknown filter type {kind!r}", field="filters.type")


class VectorStoresMixin:
    """The vector stores API of the vector_io router.

    The router provides: `register_vector_db`, `unregister_vector_db`, `insert_chunks`,
    `query_chunks`, `delete_chunks(vector_db_id, chunk_ids)`,
    `default_embedding_model()`, and the attributes `_vs_stores`, `_vs_files`
    (`open_vector_store_tables`) and `_files_api` (the Files API, or None).
    """

    _vs_stores: DocumentStore
    _vs_files: DocumentStore
    _files_api: Any
    registry: Any  # the router's ResourceRegistry

    def _readable_store(self, vector_store_id: str) -> bool:
        # A vector store is reached exactly as its vector db (same id, owner recorded in
        # the registry when it was created): one check, so the two APIs cannot disagree.
        from stackray.api.vector_io import VectorDB

        return self.registry.get(VectorDB, "vector_dbs", vector_store_id) is not None

    # ---- stores ---------------------------------------------------------------------

    def _store_doc(self, vector_store_id: str, action: Action = Action.read) -> dict[str, Any]:
        """The store's document when the caller may read it (404 like a missing id),
        and may take `action` on it (403)."""
        doc = self._vs_stores.get(vector_store_id)
        if doc is None or not self._readable_store(vector_store_id):
            raise NotFoundError(
                f"vector store {vector_store_id!r} not found", field="vector_store_id"
            )
        if action is not Action.read:
            self.registry.require(action, "vector_dbs", vector_store_id)
        return doc

    def _store_object(self, doc: dict[str, Any]) -> VectorStoreObject:
        counts = {
            s: self._vs_files.count({"vector_store_id": doc["id"], "status": s}) for s in _STATUSES
        }
        files, _ = self._vs_files.query({"vector_store_id": doc["id"]})
        usage = sum(int(f.get("usage_bytes") or 0) for f in files)
        status = "in_progress" if counts["in_progress"] else "completed"
        return VectorStoreObject(
            **{k: v for k, v in doc.items() if k not in ("provider_id",)},
            usage_bytes=usage,
            file_counts=VectorStoreFileCounts(**counts, total=sum(counts.values())),
            status=status,
        )

    async def openai_create_vector_store(
        self, request: OpenaiCreateVectorStoreRequest
    ) -> VectorStoreObject:
        vector_store_id = f"vs_{uuid.uuid4().hex}"
        embedding_model = request.embedding_model or await self.default_embedding_model()
        vector_db = await self.register_vector_db(  # type: ignore[attr-defined]
            RegisterVectorDbRequest(
                vector_db_id=vector_store_id,
                embedding_model=embedding_model,
                embedding_dimension=request.embedding_dimension,
                provider_id=request.provider_id,
                provider_vector_db_id=request.provider_vector_db_id,
            )
        )
        now = int(time.time())
        doc = {
            "id": vector_store_id,
            "created_at": now,
            "name": request.name,
            "metadata": request.metadata or {},
            "expires_after": request.expires_after,
            "last_active_at": now,
            "provider_id": vector_db.provider_id,
        }
        self._vs_stores.put(vector_store_id, doc)
        for file_id in request.file_ids or []:
            # As in Llama Stack, a file that cannot be found does not stop the store from
            # being created: it is recorded as failed, with the reason.
            await self._attach_file(
                vector_store_id,
                OpenaiAttachFileToVectorStoreRequest(
                    file_id=file_id, chunking_strategy=request.chunking_strategy
                ),
                missing_fails=True,
            )
        return self._store_object(self._store_doc(vector_store_id))

    async def default_embedding_model(self) -> str:
        raise NotImplementedError

    async def openai_list_vector_stores(
        self,
        limit: int | None = 20,
        order: str | None = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> VectorStoreListResponse:
        docs, has_more = _page(
            self._vs_stores,
            {},
            limit,
            order,
            after,
            before,
            readable=lambda d: self._readable_store(d["id"]),
        )
        data = [self._store_object(d) for d in docs]
        return VectorStoreListResponse(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )

    async def openai_retrieve_vector_store(self, vector_store_id: str) -> VectorStoreObject:
        return self._store_object(self._store_doc(vector_store_id))

    async def openai_update_vector_store(
        self, vector_store_id: str, request: OpenaiUpdateVectorStoreRequest
    ) -> VectorStoreObject:
        doc = self._store_doc(vector_store_id, Action.update)
        for field in ("name", "expires_after", "metadata"):
            value = getattr(request, field)
            if value is not None:
                doc[field] = value
        doc["last_active_at"] = int(time.time())
        self._vs_stores.put(vector_store_id, doc)
        return self._store_object(doc)

    async def openai_delete_vector_store(self, vector_store_id: str) -> VectorStoreDeleteResponse:
        self._store_doc(vector_store_id)
        await self.unregister_vector_db(vector_store_id)  # type: ignore[attr-defined]
        files, _ = self._vs_files.query({"vector_store_id": vector_store_id})
        for f in files:
            self._vs_files.delete(f["key"])
        self._vs_stores.delete(vector_store_id)
        return VectorStoreDeleteResponse(id=vector_store_id)

    # ---- search ---------------------------------------------------------------------

    async def openai_search_vector_store(
        self, vector_store_id: str, request: OpenaiSearchVectorStoreRequest
    ) -> VectorStoreSearchResponsePage:
        doc = self._store_doc(vector_store_id)
        query = request.query if isinstance(request.query, str) else " ".join(request.query)
        if not query.strip():
            raise BadRequestError("query must not be empty", field="query")
        eq, rest = _openai_filters(request.filters)
        ranking = request.ranking_options
        params: dict[str, Any] = {
            # Over-fetch when some filters are applied here, after the provider's search.
            "max_chunks": request.max_num_results * (4 if rest else 1),
            "score_threshold": ranking.score_threshold if ranking else 0.0,
            "mode": request.search_mode or "vector",
        }
        if eq:
            params["filters"] = eq
        result = await self.query_chunks(  # type: ignore[attr-defined]
            QueryChunksRequest(vector_db_id=vector_store_id, query=query, params=params)
        )
        records: dict[str, dict[str, Any] | None] = {}
        data: list[VectorStoreSearchResponse] = []
        for chunk, score in zip(result.chunks, result.scores, strict=True):
            file_id = str(chunk.metadata.get("file_id") or chunk.metadata.get("document_id") or "")
            if file_id not in records:
                records[file_id] = self._vs_files.get(_file_key(vector_store_id, file_id))
            record = records[file_id]
            if record is not None:
                attrs = dict(record.get("attributes") or {})
            else:
                # A chunk inserted with vector_io.insert (no file record): its metadata are
                # its attributes, as in Llama Stack.
                attrs = {k: v for k, v in chunk.metadata.items() if _is_attribute(v)}
                record = {}
            if rest and not all(_matches(f, attrs) for f in rest):
                continue
            data.append(
                VectorStoreSearchResponse(
                    file_id=file_id,
                    filename=str(record.get("filename") or chunk.metadata.get("filename") or ""),
                    score=score,
                    attributes=attrs,
                    content=[VectorStoreContent(text=interleaved_content_as_str(chunk.content))],
                )
            )
            if len(data) >= request.max_num_results:
                break
        doc["last_active_at"] = int(time.time())
        self._vs_stores.put(vector_store_id, doc)
        return VectorStoreSearchResponsePage(search_query=query, data=data)

    # ---- files ----------------------------------------------------------------------

    def _file_doc(
        self, vector_store_id: str, file_id: str, action: Action = Action.read
    ) -> dict[str, Any]:
        self._store_doc(vector_store_id, action)
        doc = self._vs_files.get(_file_key(vector_store_id, file_id))
        if doc is None:
            raise NotFoundError(
                f"file {file_id!r} is not in vector store {vector_store_id!r}", field="file_id"
            )
        return doc

    def _require_files(self) -> Any:
        if self._files_api is None:
            raise BadRequestError(
                "attaching files needs the files API; add `files` to the stack's apis",
                field="file_id",
            )
        return self._files_api

    async def _file_chunks(
        self, file_id: str, filename: str, strategy: Any, attributes: dict[str, Any]
    ) -> tuple[list[Chunk], int]:
        import asyncio

        from stackray.providers.utils.documents import make_chunks, text_from_bytes

        files = self._require_files()
        content: bytes = await files.get_file_content(file_id)
        try:
            text = await asyncio.to_thread(
                text_from_bytes, content, filename, f"{filename} ({file_id})"
            )
        except BadRequestError as exc:  # the file's own content: a type with no text, bad bytes
            raise _UnsupportedFile(exc.message) from None
        size, overlap = _chunking(strategy)
        metadata: dict[str, Any] = {**attributes, "file_id": file_id, "filename": filename}
        chunks = make_chunks(file_id, text, size, overlap, metadata=metadata)
        return chunks, len(content)

    async def openai_attach_file_to_vector_store(
        self, vector_store_id: str, request: OpenaiAttachFileToVectorStoreRequest
    ) -> VectorStoreFileObject:
        return await self._attach_file(vector_store_id, request, missing_fails=False)

    async def _attach_file(
        self,
        vector_store_id: str,
        request: OpenaiAttachFileToVectorStoreRequest,
        *,
        missing_fails: bool,
    ) -> VectorStoreFileObject:
        """Attach a file; an unknown file id is a 404, or with `missing_fails` a file
        record with status failed (creating a store with `file_ids`)."""
        self._store_doc(vector_store_id, Action.update)
        files = self._require_files()
        key = _file_key(vector_store_id, request.file_id)
        try:
            info = await files.get_file(request.file_id)  # 404 naming the file if unknown
        except NotFoundError as exc:
            if not missing_fails:
                raise
            strategy = request.chunking_strategy or VectorStoreChunkingStrategyAuto()
            failed: dict[str, Any] = {
                "key": key,
                "id": request.file_id,
                "vector_store_id": vector_store_id,
                "attributes": request.attributes or {},
                "chunking_strategy": strategy.model_dump(mode="json"),
                "created_at": int(time.time()),
                "status": "failed",
                "usage_bytes": 0,
                "filename": request.file_id,
                "chunk_ids": [],
                "last_error": {"code": "server_error", "message": exc.message},
            }
            self._vs_files.put(key, failed)
            return _file_object(failed)
        old = self._vs_files.get(key)
        if old is not None and old.get("chunk_ids"):
            await self.delete_chunks(vector_store_id, old["chunk_ids"])  # type: ignore[attr-defined]
        strategy = request.chunking_strategy or VectorStoreChunkingStrategyAuto()
        record: dict[str, Any] = {
            "key": key,
            "id": request.file_id,
            "vector_store_id": vector_store_id,
            "attributes": request.attributes or {},
            "chunking_strategy": strategy.model_dump(mode="json"),
            "created_at": int(time.time()),
            "status": "in_progress",
            "usage_bytes": 0,
            "filename": getattr(info, "filename", request.file_id),
            "chunk_ids": [],
        }
        self._vs_files.put(key, record)
        try:
            chunks, usage = await self._file_chunks(
                request.file_id, record["filename"], strategy, record["attributes"]
            )
            if chunks:
                await self.insert_chunks(  # type: ignore[attr-defined]
                    InsertChunksRequest(vector_db_id=vector_store_id, chunks=chunks)
                )
            record.update(
                status="completed",
                usage_bytes=usage,
                chunk_ids=[c.metadata["chunk_id"] for c in chunks],
            )
        except Exception as exc:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            record.update(
                status="failed",
                last_error={"code": _error_code(exc), "message": str(message)},
            )
        self._vs_files.put(key, record)
        return _file_object(record)

    async def openai_list_files_in_vector_store(
        self,
        vector_store_id: str,
        limit: int | None = 20,
        order: str | None = "desc",
        after: str | None = None,
        before: str | None = None,
        filter: str | None = None,
    ) -> VectorStoreListFilesResponse:
        self._store_doc(vector_store_id)
        where: dict[str, Any] = {"vector_store_id": vector_store_id}
        if filter is not None:
            if filter not in _STATUSES:
                raise BadRequestError(
                    f"filter must be one of {', '.join(_STATUSES)}", field="filter"
                )
            where["status"] = filter
        after_key = _file_key(vector_store_id, after) if after else None
        before_key = _file_key(vector_store_id, before) if before else None
        docs, has_more = _page(self._vs_files, where, limit, order, after_key, before_key)
        data = [_file_object(d) for d in docs]
        return VectorStoreListFilesResponse(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=has_more,
        )

    async def openai_retrieve_vector_store_file(
        self, vector_store_id: str, file_id: str
    ) -> VectorStoreFileObject:
        return _file_object(self._file_doc(vector_store_id, file_id))

    async def openai_retrieve_vector_store_file_contents(
        self, vector_store_id: str, file_id: str
    ) -> VectorStoreFileContentsResponse:
        record = self._file_doc(vector_store_id, file_id)
        strategy = _strategy(record)
        chunks, _ = await self._file_chunks(file_id, record["filename"], strategy, {})
        content = [VectorStoreContent(text=interleaved_content_as_str(c.content)) for c in chunks]
        return VectorStoreFileContentsResponse(
            file_id=file_id,
            filename=record["filename"],
            attributes=record.get("attributes") or {},
            content=content,
            data=content,
        )

    async def openai_update_vector_store_file(
        self, vector_store_id: str, file_id: str, request: OpenaiUpdateVectorStoreFileRequest
    ) -> VectorStoreFileObject:
        record = self._file_doc(vector_store_id, file_id, Action.update)
        # Attributes are copied into every chunk's metadata (that is what filters match),
        # so changing them re-indexes the file.
        return await self.openai_attach_file_to_vector_store(
            vector_store_id,
            OpenaiAttachFileToVectorStoreRequest(
                file_id=file_id, attributes=request.attributes, chunking_strategy=_strategy(record)
            ),
        )

    async def openai_delete_vector_store_file(
        self, vector_store_id: str, file_id: str
    ) -> VectorStoreFileDeleteResponse:
        record = self._file_doc(vector_store_id, file_id, Action.update)
        if record.get("chunk_ids"):
            await self.delete_chunks(vector_store_id, record["chunk_ids"])  # type: ignore[attr-defined]
        self._vs_files.delete(record["key"])
        return VectorStoreFileDeleteResponse(id=file_id)


class _UnsupportedFile(Exception):
    """A file whose content cannot be turned into text: the client's file, not the stack."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _error_code(exc: Exception) -> str:
    """`last_error.code` of a file that failed, in OpenAI's terms."""
    if isinstance(exc, _UnsupportedFile):
        return "unsupported_file"
    if isinstance(exc, QuotaExceededError):
        return "rate_limit_exceeded"
    return "server_error"


def _file_key(vector_store_id: str, file_id: str) -> str:
    return f"{vector_store_id}/{file_id}"


def _strategy(record: dict[str, Any]) -> Any:
    raw = record.get("chunking_strategy") or {"type": "auto"}
    if raw.get("type") == "static":
        return VectorStoreChunkingStrategyStatic.model_validate(raw)
    return VectorStoreChunkingStrategyAuto()


def _file_object(record: dict[str, Any]) -> VectorStoreFileObject:
    fields = {k: v for k, v in record.items() if k not in _PRIVATE}
    fields["chunking_strategy"] = _strategy(record)
    if fields.get("last_error"):
        fields["last_error"] = VectorStoreFileLastError.model_validate(fields["last_error"])
    return VectorStoreFileObject.model_validate(fields)


def _page(
    store: DocumentStore,
    where: dict[str, Any],
    limit: int | None,
    order: str | None,
    after: str | None,
    before: str | None,
    readable: Any = None,
) -> tuple[list[dict[str, Any]], bool]:
    if order not in (None, "asc", "desc"):
        raise BadRequestError("order must be 'asc' or 'desc'", field="order")
    if limit is not None and not 1 <= limit <= 100:
        raise BadRequestError("limit must be between 1 and 100", field="limit")
    desc = order != "asc"

    def query(desc: bool, after: str | None) -> tuple[list[dict[str, Any]], bool]:
        if readable is None:
            return store.query(where, order_by="created_at", desc=desc, after=after, limit=limit)
        return readable_page(
            store, readable, where, order_by="created_at", desc=desc, after=after, limit=limit
        )

    if before is not None:
        docs, has_more = query(not desc, before)
        return list(reversed(docs)), has_more
    return query(desc, after)


__all__ = ["VectorStoresMixin", "open_vector_store_tables"]


def _is_attribute(value: Any) -> bool:
    """What an OpenAI vector store attribute may hold: a string, number or boolean."""
    return isinstance(value, str | int | float | bool)
