"""inline::sentence-transformers in-process: batching, truncation modes, concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stackray.api.errors import BadRequestError
from stackray.api.inference import EmbeddingsRequest, OpenAIEmbeddingsRequest
from stackray.api.models import Model, ModelType
from stackray.providers.inline.inference.sentence_transformers.config import (
    SentenceTransformersInferenceConfig,
)
from stackray.providers.inline.inference.sentence_transformers.impl import (
    SentenceTransformersInferenceProvider,
)

NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Context:
    provider_id = "st"
    data_dir = Path("/nonexistent")


@pytest.fixture(scope="module")
def provider():
    return SentenceTransformersInferenceProvider(
        SentenceTransformersInferenceConfig(), {}, Context()
    )


def test_register_fills_dimension(provider):
    model = Model(
        identifier="m", provider_id="st", provider_resource_id=NAME, model_type=ModelType.embedding
    )
    registered = asyncio.run(provider.register_model(model))
    assert registered.metadata["embedding_dimension"] == 384


def test_register_llm_is_400(provider):
    model = Model(
        identifier="m", provider_id="st", provider_resource_id=NAME, model_type=ModelType.llm
    )
    with pytest.raises(BadRequestError, match="embedding"):
        asyncio.run(provider.register_model(model))


def test_concurrent_requests_share_batches_and_never_race(provider):
    """Many concurrent requests of different lengths (tokenizer padding state is shared)."""

    async def main():
        texts = [("word " * (i % 37 + 1)).strip() for i in range(64)]
        requests = [EmbeddingsRequest(model_id=NAME, contents=[t]) for t in texts]
        counting = [provider._embed(NAME, [t] * 3, "none", None, "contents") for t in texts[:16]]
        results = await asyncio.gather(*(provider.embeddings(r) for r in requests), *counting)
        return results

    results = asyncio.run(main())
    assert all(len(r.embeddings[0]) == 384 for r in results[:64])
    loaded = asyncio.run(provider._model(NAME))
    assert loaded.batcher.largest_batch > 1


def test_truncation_modes(provider):
    long_text = "token " * 600
    with pytest.raises(BadRequestError, match="text_truncation"):
        asyncio.run(
            provider.embeddings(
                EmbeddingsRequest(model_id=NAME, contents=[long_text], text_truncation="none")
            )
        )
    for mode in ("start", "end"):
        r = asyncio.run(
            provider.embeddings(
                EmbeddingsRequest(model_id=NAME, contents=[long_text], text_truncation=mode)
            )
        )
        assert len(r.embeddings[0]) == 384


def test_openai_usage_and_dimensions(provider):
    r = asyncio.run(
        provider.openai_embeddings(
            OpenAIEmbeddingsRequest(model=NAME, input=["a b c", "d"], dimensions=32)
        )
    )
    assert len(r.data) == 2 and len(r.data[0].embedding) == 32
    assert r.usage.prompt_tokens > 0
