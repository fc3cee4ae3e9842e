"""The model client autoevals calls, served by this stack's Inference API.

autoevals asks an OpenAI-style client for chat completions (a forced tool call: the
classifier's `select_choice`, the RAGAS metrics' extraction functions) and embeddings.
`StackModels` answers both through the scoring provider's Inference dependency:
chat completions through the OpenAI-compatible chat completion (tools and JSON schemas
travel as they are), embeddings through the Llama Stack embeddings call (every
embedding provider serves it). Nothing leaves the stack and no key is needed.

A failure of the Inference API itself is raised as `InferenceCallFailed`, so the
provider tells it apart from a judge answer autoevals cannot read (a row's error).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from autoevals.oai import LLMClient

from stackray.api.inference import EmbeddingsRequest, OpenAIChatCompletionRequest

# The chat completion arguments autoevals may send that the Inference API takes.
_CHAT_ARGS = frozenset(OpenAIChatCompletionRequest.model_fields) - {"stream", "stream_options"}


class InferenceCallFailed(Exception):
    """The Inference API refused or failed a call; `cause` is its error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _NeverRaised(Exception):
    """autoevals retries on its client's rate-limit error; the stack's calls have their
    own retries, so none is ever retried here."""


class _ChatCompletions:
    def __init__(self, models: StackModels) -> None:
        self._models = models

    async def create(self, **kwargs: Any) -> dict[str, Any]:
        body = {k: v for k, v in kwargs.items() if k in _CHAT_ARGS and v is not None}
        if "max_tokens" not in body and "max_completion_tokens" not in body:
            body["max_tokens"] = self._models.max_tokens
        request = OpenAIChatCompletionRequest.model_validate(body)
        async with self._models.gate:
            try:
                response = await self._models.inference.openai_chat_completion(request)
            except Exception as e:
                raise InferenceCallFailed(e) from e
        self._models.chat_calls += 1
        result: dict[str, Any] = response.model_dump(mode="json", exclude_none=True)
        return result


class _Chat:
    def __init__(self, models: StackModels) -> None:
        self.completions = _ChatCompletions(models)


class _Embeddings:
    def __init__(self, models: StackModels) -> None:
        self._models = models

    async def create(self, *, model: str, input: str | list[str], **_: Any) -> dict[str, Any]:
        texts = [input] if isinstance(input, str) else list(input)
        async with self._models.gate:
            try:
                response = await self._models.inference.embeddings(
                    EmbeddingsRequest(model_id=model, contents=texts)
                )
            except Exception as e:
                raise InferenceCallFailed(e) from e
        self._models.embedding_calls += 1
        return {
            "object": "list",
            "model": model,
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(response.embeddings)
            ],
        }


class StackModels:
    """The subset of the OpenAI client autoevals uses (`chat.completions.create`,
    `embeddings.create`, both awaitable), over the Inference API; at most `concurrency`
    calls in flight."""

    def __init__(self, inference: Any, concurrency: int, max_tokens: int) -> None:
        self.inference = inference
        self.max_tokens = max_tokens
        self.gate = asyncio.Semaphore(concurrency)
        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)
        self.chat_calls = 0
        self.embedding_calls = 0

    def llm_client(self) -> LLMClient:
        return _StackLLMClient(openai=self)


@dataclass
class _StackLLMClient(LLMClient):
    """autoevals' client wrapper bound to `StackModels` as it is (no OpenAI SDK behind)."""

    def __post_init__(self) -> None:
        async def no_moderation(**_: Any) -> Any:
            raise InferenceCallFailed(NotImplementedError("moderation is not served"))

        self.complete = self.openai.chat.completions.create
        self.embed = self.openai.embeddings.create
        self.moderation = no_moderation
        self.RateLimitError = _NeverRaised
        self.is_async = True
        self._is_wrapped = False
