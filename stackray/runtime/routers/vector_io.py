"""VectorIORouter: the vector_dbs registry and chunk insert/query, routed by vector_db_id.

The registry lives in the metadata store (every replica sees a registration at once).
Chunks that come without an embedding are embedded through the Inference API with the
vector db's embedding model; hybrid search is computed here from the provider's vector and
keyword results, so every provider offers all three modes. Higher layers (OpenAI vector
stores, the RAG tool) build on the public methods: register/insert/query/unregister.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from stackray.api.common import interleaved_content_as_str
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConfigError, ConflictError, NotFoundError
from stackray.api.files import FilesApi
from stackray.api.inference import EmbeddingsRequest, InferenceApi, TextTruncation
from stackray.api.models import Model, ModelType
from stackray.api.vector_io import (
    Chunk,
    InsertChunksRequest,
    ListVectorDBsResponse,
    QueryChunksRequest,
    QueryChunksResponse,
    RegisterVectorDbRequest,
    ScoredChunk,
    SearchMode,
    VectorDB,
)
from stackray.providers.utils.keyword import reciprocal_rank_fusion
from stackray.runtime.access_control import Action
from stackray.runtime.resolver import build_providers
from stackray.runtime.resources import ResourceRegistry, open_registry
from stackray.runtime.routers.vector_stores import VectorStoresMixin, open_vector_store_tables
from stackray.runtime.storage import DocumentStore

VECTOR_DBS = "vector_dbs"

EMBEDDING_BATCH = 64
"""Texts per embeddings request when the router embeds chunks."""
MAX_CHUNKS_PER_INSERT = 10_000
"""An insert with more chunks is refused (400): split it into batches."""
MAX_CHUNKS_PER_QUERY = 1_000
NO_SCORE_THRESHOLD = -2.0
"""Below any cosine similarity: what providers get when a query sets no threshold."""
HYBRID_CANDIDATES = 4
"""Hybrid search fuses the top ``HYBRID_CANDIDATES * max_chunks`` (at least 20) of each mode."""


@dataclass(frozen=True)
class QueryParams:
    """The `params` of a query, validated."""

    max_chunks: int = 3
    score_threshold: float | None = None
    """None: a vector query returns the nearest chunks however low their similarity (as
    Llama Stack does); a keyword query returns the chunks that match at all."""
    mode: SearchMode = SearchMode.vector
    ranker: str = "rrf"
    impact_factor: float = 60.0
    alpha: float = 0.5
    filters: dict[str, Any] | None = None

    @classmethod
    def parse(cls, params: dict[str, Any] | None) -> QueryParams:
        params = dict(params or {})
        known = {"max_chunks", "score_threshold", "mode", "ranker", "filters"}
        # Fields other clients send that do not change the result here.
        params.pop("max_tokens_in_context", None)
        unknown = sorted(set(params) - known)
        if unknown:
            raise BadRequestError(
                f"unknown query parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                field=f"params.{unknown[0]}",
            )
        max_chunks = params.get("max_chunks", 3)
        if isinstance(max_chunks, bool) or not isinstance(max_chunks, int | float):
            raise BadRequestError("max_chunks must be an integer", field="params.max_chunks")
        if max_chunks != int(max_chunks) or not 1 <= max_chunks <= MAX_CHUNKS_PER_QUERY:
            raise BadRequestError(
                f"max_chunks must be an integer from 1 to {MAX_CHUNKS_PER_QUERY}",
                field="params.max_chunks",
            )
        threshold = params.get("score_threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int | float)
        ):
            raise BadRequestError(
                "score_threshold must be a number", field="params.score_threshold"
            )
        if threshold is not None and not math.isfinite(threshold):
            raise BadRequestError("score_threshold must be finite", field="params.score_threshold")
        mode_raw = params.get("mode") or "vector"
        try:
            mode = SearchMode(mode_raw)
        except ValueError:
            raise BadRequestError(
                f"unknown search mode {mode_raw!r}; use vector, keyword or hybrid",
                field="params.mode",
            ) from None
        ranker, impact_factor, alpha = cls._parse_ranker(params.get("ranker"))
        filters = params.get("filters")
        if filters is not None:
            if not isinstance(filters, dict):
                raise BadRequestError(
                    "filters must be a mapping of metadata key to value", field="params.filters"
                )
            for key in filters:
                if not key or '"' in key:
                    raise BadRequestError(
                        f"invalid filter key {key!r}", field=f"params.filters.{key}"
                    )
        return cls(
            max_chunks=int(max_chunks),
            score_threshold=None if threshold is None else float(threshold),
            mode=mode,
            ranker=ranker,
            impact_factor=impact_factor,
            alpha=alpha,
            filters=filters or None,
        )

    def vector_threshold(self) -> float:
        """The least similarity a vector hit needs (below any cosine similarity if unset)."""
        return NO_SCORE_THRESHOLD if self.score_threshold is None else self.score_threshold

    def keyword_threshold(self) -> float:
        return 0.0 if self.score_threshold is None else self.score_threshold

    @staticmethod
    def _parse_ranker(raw: Any) -> tuple[str, float, float]:
        if raw is None:
            return "rrf", 60.0, 0.5
        if not isinstance(raw, dict):
            raise BadRequestError(
                'ranker must be an object such as {"type": "rrf", "impact_factor": 60}',
                field="params.ranker",
            )
        kind = raw.get("type", "rrf")
        extra = set(raw) - {"type", "impact_factor", "alpha"}
        if extra:
            raise BadRequestError(
                f"unknown ranker field(s) {', '.join(sorted(extra))}", field="params.ranker"
            )
        if kind == "rrf":
            k = raw.get("impact_factor", 60.0)
            if isinstance(k, bool) or not isinstance(k, int | float) or not 0 < k < math.inf:
                raise BadRequestError(
                    "impact_factor must be a positive number", field="params.ranker.impact_factor"
                )
            return "rrf", float(k), 0.5
        if kind == "weighted":
            alpha = raw.get("alpha", 0.5)
            if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
                raise BadRequestError(
                    "alpha must be a number from 0 to 1", field="params.ranker.alpha"
                )
            return "weighted", 60.0, float(alpha)
        raise BadRequestError(
            f"unknown ranker type {kind!r}; use rrf or weighted", field="params.ranker.type"
        )


def default_chunk_id(chunk: Chunk, text: str) -> str:
    """A stable id from the chunk's document id and content (same chunk -> same id)."""
    document_id = chunk.metadata.get("document_id")
    key = f"{document_id if document_id is not None else ''}\x00{text}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class VectorIORouter(VectorStoresMixin):
    """Routes vector IO calls by vector_db_id; serves the vector_dbs API and the OpenAI
    vector stores (`VectorStoresMixin`)."""

    def __init__(
        self,
        providers: dict[str, Any],
        registry: ResourceRegistry,
        inference: InferenceApi,
        vector_store_tables: tuple[DocumentStore, DocumentStore],
        files: FilesApi | None = None,
    ) -> None:
        if not providers:
            raise ConfigError("the vector_io API needs at least one vector_io provider")
        self.providers = providers
        self.registry = registry
        self.inference = inference
        self._vs_stores, self._vs_files = vector_store_tables
        self._files_api = files

    async def default_embedding_model(self) -> str:
        """The embedding model of vector stores created without one: the first registered."""
        listing = await self.inference.list_models()
        for model in listing.data:
            if model.model_type == ModelType.embedding:
                return str(model.identifier)
        raise BadRequestError(
            "no embedding model is registered; name one in embedding_model",
            field="embedding_model",
        )

    async def health(self) -> None:
        self.registry.store.get("health")

    # ---- vector dbs --------------------------------------------------------------------

    def _provider_id_for_new(self, provider_id: str | None) -> str:
        if provider_id is None:
            return next(iter(self.providers))
        if provider_id not in self.providers:
            raise BadRequestError(
                f"no vector_io provider {provider_id!r} (providers: {', '.join(self.providers)})",
                field="provider_id",
            )
        return provider_id

    async def _embedding_model(self, model_id: str) -> Model:
        try:
            model = await self.inference.get_model(model_id)
        except NotFoundError:
            raise BadRequestError(
                f"embedding model {model_id!r} is not registered; GET /v1/models lists the models",
                field="embedding_model",
            ) from None
        if model.model_type != ModelType.embedding:
            raise BadRequestError(
                f"model {model_id!r} is an {model.model_type.value} model, not an embedding model",
                field="embedding_model",
            )
        return model  # type: ignore[no-any-return]

    async def register_vector_db(self, request: RegisterVectorDbRequest) -> VectorDB:
        provider_id = self._provider_id_for_new(request.provider_id)
        model = await self._embedding_model(request.embedding_model)
        known = model.metadata.get("embedding_dimension")
        dimension = request.embedding_dimension
        if dimension is not None and (isinstance(dimension, bool) or dimension <= 0):
            raise BadRequestError(
                "embedding_dimension must be a positive integer", field="embedding_dimension"
            )
        if known is not None:
            if dimension is not None and dimension != int(known):
                raise BadRequestError(
                    f"embedding_dimension {dimension} does not match model {model.identifier!r}, "
                    f"whose embeddings have {int(known)} dimensions",
                    field="embedding_dimension",
                )
            dimension = int(known)
        if dimension is None:
            raise BadRequestError(
                f"the dimension of model {model.identifier!r} is unknown (no embedding_dimension "
                "in its metadata); give embedding_dimension",
                field="embedding_dimension",
            )
        vector_db = VectorDB(
            identifier=request.vector_db_id,
            provider_id=provider_id,
            provider_resource_id=request.provider_vector_db_id or request.vector_db_id,
            embedding_model=model.identifier,
            embedding_dimension=dimension,
        )
        existing = self.registry.get_for_create(VectorDB, VECTOR_DBS, vector_db.identifier)
        if existing is not None:
            if existing == vector_db:
                return existing
            raise ConflictError(
                f"vector db {vector_db.identifier!r} is already registered with provider "
                f"{existing.provider_id!r}, model {existing.embedding_model!r}; unregister it first"
            )
        # Every vector db counts, the caller's or not: two sharing an index would mix data.
        for other in self.registry.list_all(VectorDB, VECTOR_DBS):
            if (other.provider_id, other.provider_resource_id) == (
                vector_db.provider_id,
                vector_db.provider_resource_id,
            ):
                raise ConflictError(
                    f"another vector db already uses {vector_db.provider_resource_id!r} "
                    f"on provider {provider_id!r}",
                    field="provider_vector_db_id",
                )
        self.registry.require(Action.create, VECTOR_DBS, vector_db.identifier)
        await self.providers[provider_id].register_vector_db(vector_db)
        if not self.registry.put_if_absent(VECTOR_DBS, vector_db.identifier, vector_db):
            return await self.register_vector_db(request)
        return vector_db

    def list_vector_dbs(self) -> ListVectorDBsResponse:
        return ListVectorDBsResponse(data=self.registry.list(VectorDB, VECTOR_DBS))

    def get_vector_db(self, vector_db_id: str) -> VectorDB:
        vector_db = self.registry.get(VectorDB, VECTOR_DBS, vector_db_id)
        if vector_db is None:
            raise NotFoundError(
                f"vector db {vector_db_id!r} not found; GET /v1/vector-dbs lists them",
                field="vector_db_id",
            )
        return vector_db

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        vector_db = self.get_vector_db(vector_db_id)
        self.registry.require(Action.delete, VECTOR_DBS, vector_db.identifier)
        provider = self.providers.get(vector_db.provider_id)
        if provider is not None:
            await provider.unregister_vector_db(
                vector_db.provider_resource_id or vector_db.identifier
            )
        self.registry.delete(VECTOR_DBS, vector_db.identifier)

    def _route(self, vector_db_id: str, action: Action = Action.read) -> tuple[VectorDB, Any]:
        vector_db = self.get_vector_db(vector_db_id)
        if action is not Action.read:  # writing chunks changes the vector db
            self.registry.require(action, VECTOR_DBS, vector_db.identifier)
        provider = self.providers.get(vector_db.provider_id)
        if provider is None:
            raise BadRequestError(
                f"vector db {vector_db_id!r} belongs to provider {vector_db.provider_id!r}, "
                "which this stack does not run",
                field="vector_db_id",
            )
        return vector_db, provider

    # ---- embeddings --------------------------------------------------------------------

    async def _embed(self, vector_db: VectorDB, texts: list[str]) -> list[list[float]]:
        batches = [texts[i : i + EMBEDDING_BATCH] for i in range(0, len(texts), EMBEDDING_BATCH)]
        responses = await asyncio.gather(
            *(
                self.inference.embeddings(
                    EmbeddingsRequest(
                        model_id=vector_db.embedding_model,
                        contents=batch,
                        text_truncation=TextTruncation.end,
                    )
                )
                for batch in batches
            )
        )
        embeddings = [e for r in responses for e in r.embeddings]
        for e in embeddings:
            if len(e) != vector_db.embedding_dimension:
                raise BadRequestError(
                    f"model {vector_db.embedding_model!r} returned {len(e)}-dimensional embeddings; "
                    f"vector db {vector_db.identifier!r} holds {vector_db.embedding_dimension}",
                    field="vector_db_id",
                )
        return embeddings

    # ---- chunks ------------------------------------------------------------------------

    async def insert_chunks(self, request: InsertChunksRequest) -> None:
        vector_db, provider = self._route(request.vector_db_id, Action.update)
        if len(request.chunks) > MAX_CHUNKS_PER_INSERT:
            raise BadRequestError(
                f"{len(request.chunks)} chunks in one insert; at most {MAX_CHUNKS_PER_INSERT}",
                field="chunks",
            )
        if not request.chunks:
            return
        dim = vector_db.embedding_dimension
        texts: list[str] = []
        to_embed: list[int] = []
        for i, chunk in enumerate(request.chunks):
            text = interleaved_content_as_str(chunk.content)
            if not text.strip():
                raise BadRequestError("chunk content is empty", field=f"chunks[{i}].content")
            texts.append(text)
            if chunk.embedding is None:
                to_embed.append(i)
            elif len(chunk.embedding) != dim:
                raise BadRequestError(
                    f"embedding has {len(chunk.embedding)} dimensions; vector db "
                    f"{vector_db.identifier!r} holds {dim}",
                    field=f"chunks[{i}].embedding",
                )
            elif not all(math.isfinite(x) for x in chunk.embedding):
                raise BadRequestError(
                    "embedding has a non-finite value", field=f"chunks[{i}].embedding"
                )
        embeddings = await self._embed(vector_db, [texts[i] for i in to_embed]) if to_embed else []
        computed = dict(zip(to_embed, embeddings, strict=True))
        # Last one wins when a request repeats a chunk id.
        prepared: dict[str, Chunk] = {}
        for i, chunk in enumerate(request.chunks):
            metadata = dict(chunk.metadata)
            chunk_id = metadata.get("chunk_id")
            chunk_id = default_chunk_id(chunk, texts[i]) if chunk_id is None else str(chunk_id)
            metadata["chunk_id"] = chunk_id
            embedding = chunk.embedding if chunk.embedding is not None else computed[i]
            prepared.pop(chunk_id, None)
            prepared[chunk_id] = chunk.model_copy(
                update={"metadata": metadata, "embedding": embedding}
            )
        await provider.insert_chunks(vector_db, list(prepared.values()))

    async def delete_chunks(self, vector_db_id: str, chunk_ids: list[str]) -> None:
        """Remove chunks by ``metadata['chunk_id']`` (for vector stores and re-ingestion)."""
        vector_db, provider = self._route(vector_db_id, Action.update)
        if chunk_ids:
            await provider.delete_chunks(vector_db, chunk_ids)

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        vector_db, provider = self._route(request.vector_db_id)
        params = QueryParams.parse(request.params)
        query = interleaved_content_as_str(request.query)
        if not query.strip():
            raise BadRequestError("query is empty", field="query")
        k = params.max_chunks
        if params.mode == SearchMode.vector:
            hits = await self._vector(vector_db, provider, query, k, params)
        elif params.mode == SearchMode.keyword:
            hits = await provider.query_keyword(
                vector_db, query, k, params.keyword_threshold(), params.filters
            )
        else:
            hits = await self._hybrid(vector_db, provider, query, params)
        return QueryChunksResponse(
            chunks=[h.chunk.model_copy(update={"embedding": None}) for h in hits],
            scores=[h.score for h in hits],
        )

    async def _vector(
        self, vector_db: VectorDB, provider: Any, query: str, k: int, params: QueryParams
    ) -> list[ScoredChunk]:
        (embedding,) = await self._embed(vector_db, [query])
        hits: list[ScoredChunk] = await provider.query_vector(
            vector_db, embedding, k, params.vector_threshold(), params.filters
        )
        return hits

    async def _hybrid(
        self, vector_db: VectorDB, provider: Any, query: str, params: QueryParams
    ) -> list[ScoredChunk]:
        k = params.max_chunks
        candidates = max(HYBRID_CANDIDATES * k, 20)
        # Candidates are not thresholded: the threshold applies to the fused score.
        vector_params = QueryParams(filters=params.filters)
        vector_hits, keyword_hits = await asyncio.gather(
            self._vector(vector_db, provider, query, candidates, vector_params),
            provider.query_keyword(vector_db, query, candidates, 0.0, params.filters),
        )
        by_id: dict[str, Chunk] = {}
        for hit in (*vector_hits, *keyword_hits):
            by_id.setdefault(str(hit.chunk.metadata["chunk_id"]), hit.chunk)
        vector_ids = [str(h.chunk.metadata["chunk_id"]) for h in vector_hits]
        keyword_ids = [str(h.chunk.metadata["chunk_id"]) for h in keyword_hits]
        if params.ranker == "rrf":
            fused = reciprocal_rank_fusion([vector_ids, keyword_ids], k=int(params.impact_factor))
        else:
            fused = weighted_fusion(
                {str(h.chunk.metadata["chunk_id"]): h.score for h in vector_hits},
                {str(h.chunk.metadata["chunk_id"]): h.score for h in keyword_hits},
                params.alpha,
            )
        return [
            ScoredChunk(chunk=by_id[cid], score=score)
            for cid, score in fused
            if params.score_threshold is None or score >= params.score_threshold
        ][:k]


def weighted_fusion(
    vector: dict[str, float], keyword: dict[str, float], alpha: float
) -> list[tuple[str, float]]:
    """``alpha * vector + (1 - alpha) * keyword``, each list's scores min-max normalized to
    [0, 1] (a chunk missing from a list scores 0 there), best first."""

    def normalized(scores: dict[str, float]) -> dict[str, float]:
        if not scores:
            return {}
        lo, hi = min(scores.values()), max(scores.values())
        if hi == lo:
            return dict.fromkeys(scores, 1.0)
        return {cid: (s - lo) / (hi - lo) for cid, s in scores.items()}

    v, kw = normalized(vector), normalized(keyword)
    fused = {cid: alpha * v.get(cid, 0.0) + (1 - alpha) * kw.get(cid, 0.0) for cid in {*v, *kw}}
    return sorted(fused.items(), key=lambda s: (-s[1], s[0]))


# ---- building -------------------------------------------------------------------------


async def register_config_vector_dbs(router: VectorIORouter, stack: Any) -> None:
    """Register the run config's vector dbs (idempotent: every replica does it at start)."""
    for vdb in stack.vector_dbs:
        await router.register_vector_db(
            RegisterVectorDbRequest(
                vector_db_id=vdb.vector_db_id,
                embedding_model=vdb.embedding_model,
                embedding_dimension=vdb.embedding_dimension,
                provider_id=vdb.provider_id,
                provider_vector_db_id=vdb.provider_vector_db_id,
            )
        )


async def build_router(
    stack: Any, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> VectorIORouter:
    """The vector_io router (`ROUTERS[Api.vector_io]`); its providers in config order
    (the first is the default)."""
    providers = await build_providers(stack, Api.vector_io, deps, servers)
    registry = open_registry(stack)
    router = VectorIORouter(
        providers,
        registry,
        deps[Api.inference],
        open_vector_store_tables(stack.metadata_store_config()),
        deps.get(Api.files),
    )
    await register_config_vector_dbs(router, stack)
    return router
