"""The RAG tool: insert documents into vector dbs, and retrieve context for a query.

Documents are converted to text (plain, ``data:`` URIs, local files, PDF, HTML), chunked
by tokens with overlap, and inserted through the VectorIO API (which embeds them). A query
searches every named vector db concurrently, keeps the best chunks overall, and formats
them with the chunk template until the token budget is spent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from stackray.api.common import TextContentItem, UserMessage, interleaved_content_as_str
from stackray.api.errors import BadRequestError
from stackray.api.inference import ChatCompletionRequest, InferenceApi
from stackray.api.rag import (
    InsertRequest,
    LLMRAGQueryGeneratorConfig,
    QueryRequest,
    RAGQueryConfig,
    RAGQueryResult,
    WeightedRanker,
)
from stackray.api.vector_io import Chunk, InsertChunksRequest, QueryChunksRequest, VectorIOApi

INSERT_BATCH = 256


@dataclass
class _ChunkView:
    content: str


def overlap_for(chunk_size: int) -> int:
    """Token overlap between consecutive chunks of a RAG insert: a quarter of the size."""
    return chunk_size // 4


def check_template(template: str) -> None:
    if "{chunk.content}" not in template:
        raise BadRequestError(
            "chunk_template must contain {chunk.content}", field="query_config.chunk_template"
        )
    try:
        template.format(index=1, chunk=_ChunkView("x"), metadata={})
    except (KeyError, IndexError, AttributeError, ValueError) as e:
        raise BadRequestError(
            f"chunk_template may use only {{index}}, {{chunk.content}} and {{metadata}}: {e}",
            field="query_config.chunk_template",
        ) from None


class RagRuntime:
    """The logic of the ``builtin::rag`` tool group, over the VectorIO and Inference APIs."""

    def __init__(
        self,
        vector_io: VectorIOApi,
        inference: InferenceApi | None = None,
        allowed_dirs: list[str] | None = None,
    ) -> None:
        self.vector_io = vector_io
        self.inference = inference
        self.allowed_dirs = allowed_dirs or []

    async def insert(self, request: InsertRequest) -> None:
        from stackray.providers.utils.documents import document_text, make_chunks

        if not request.documents:
            raise BadRequestError("documents must not be empty", field="documents")
        size = request.chunk_size_in_tokens
        chunks: list[Chunk] = []
        for i, doc in enumerate(request.documents):
            if not doc.document_id:
                raise BadRequestError(
                    "document_id must not be empty", field=f"documents[{i}].document_id"
                )
            text = await document_text(
                doc.content,
                doc.mime_type,
                name=doc.document_id,
                allowed_dirs=self.allowed_dirs,
            )
            chunks.extend(
                make_chunks(
                    doc.document_id, text, size, overlap_for(size), metadata=dict(doc.metadata)
                )
            )
        for start in range(0, len(chunks), INSERT_BATCH):
            await self.vector_io.insert_chunks(
                InsertChunksRequest(
                    vector_db_id=request.vector_db_id, chunks=chunks[start : start + INSERT_BATCH]
                )
            )

    async def _query_text(self, request: QueryRequest, config: RAGQueryConfig) -> str:
        generator = config.query_generator_config
        if isinstance(generator, LLMRAGQueryGeneratorConfig):
            if self.inference is None:
                raise BadRequestError(
                    "the llm query generator needs the inference API",
                    field="query_config.query_generator_config",
                )
            text = interleaved_content_as_str(request.content)
            prompt = generator.template.replace("{query}", text).replace("{messages}", text)
            response = await self.inference.chat_completion(
                ChatCompletionRequest(
                    model_id=generator.model, messages=[UserMessage(content=prompt)]
                )
            )
            return interleaved_content_as_str(response.completion_message.content).strip()
        return interleaved_content_as_str(request.content, sep=generator.separator)

    async def query(self, request: QueryRequest) -> RAGQueryResult:
        from stackray.providers.utils.documents import count_tokens

        if not request.vector_db_ids:
            raise BadRequestError("vector_db_ids must not be empty", field="vector_db_ids")
        config = request.query_config or RAGQueryConfig()
        check_template(config.chunk_template)
        query = await self._query_text(request, config)
        if not query.strip():
            raise BadRequestError("the query is empty", field="content")
        params: dict[str, Any] = {"max_chunks": config.max_chunks}
        if config.mode:
            params["mode"] = config.mode
        if config.ranker is not None:
            params["ranker"] = config.ranker.model_dump(mode="json")
            if isinstance(config.ranker, WeightedRanker) and not config.mode:
                params["mode"] = "hybrid"
        results = await asyncio.gather(
            *(
                self.vector_io.query_chunks(
                    QueryChunksRequest(vector_db_id=vdb, query=query, params=params)
                )
                for vdb in request.vector_db_ids
            )
        )
        hits = sorted(
            (
                (score, chunk)
                for r in results
                for chunk, score in zip(r.chunks, r.scores, strict=True)
            ),
            key=lambda h: -h[0],
        )[: config.max_chunks]
        if not hits:
            return RAGQueryResult(
                content=None, metadata={"document_ids": [], "chunks": [], "scores": []}
            )

        parts: list[TextContentItem] = [
            TextContentItem(
                text=f"knowledge_search tool found {len(hits)} chunks:\nBEGIN of knowledge_search tool results.\n"
            )
        ]
        used_tokens = 0
        kept: list[tuple[float, Chunk]] = []
        for index, (score, chunk) in enumerate(hits, start=1):
            text = interleaved_content_as_str(chunk.content)
            tokens = chunk.metadata.get("token_count")
            tokens = int(tokens) if isinstance(tokens, int | float) else count_tokens(text)
            if used_tokens + tokens > config.max_tokens_in_context:
                break
            used_tokens += tokens
            metadata = {
                k: v for k, v in chunk.metadata.items() if k not in ("token_count", "chunk_id")
            }
            parts.append(
                TextContentItem(
                    text=config.chunk_template.format(
                        index=index, chunk=_ChunkView(text), metadata=metadata
                    )
                )
            )
            kept.append((score, chunk))
        parts.append(TextContentItem(text="END of knowledge_search tool results.\n"))
        parts.append(
            TextContentItem(
                text=f'The above results were retrieved to help answer the user\'s query: "{query}". '
                "Use them as supporting information only in answering this query.\n"
            )
        )
        return RAGQueryResult(
            content=list(parts),
            metadata={
                "document_ids": [c.metadata.get("document_id") for _, c in kept],
                "chunks": [interleaved_content_as_str(c.content) for _, c in kept],
                "scores": [s for s, _ in kept],
            },
        )
