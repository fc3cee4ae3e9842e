"""`OpenAICompatibleInferenceAdapter`: the base of the remote inference providers.

It implements the whole `Inference` protocol against a service that speaks OpenAI's API
(`/chat/completions`, `/completions`, `/embeddings`, `/models`):

- the OpenAI routes pass through, streamed answers parsed from server-sent events into
  our chunk models;
- the Llama Stack routes are translated to OpenAI requests and their answers back
  (`translate`);
- `register_model` checks that the service lists the model (when it lists models at all).

An adapter for one service is a subclass that says where the service is
(`base_url`), which key it takes (`api_key`, and the `provider_data_key` under which a
request may bring its own), and what it takes beyond OpenAI's parameters.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, SecretStr

from stackray.api.errors import BadRequestError, ProviderError, StackError
from stackray.api.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAICompletion,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
)
from stackray.api.models import Model, ModelType
from stackray.providers.remote.inference import translate
from stackray.providers.remote.inference.client import RemoteClient, Transport
from stackray.providers.remote.inference.config import RemoteInferenceConfig
from stackray.providers.remote.inference.translate import Dialect

logger = logging.getLogger("stackray.providers.remote")

ConfigT = TypeVar("ConfigT", bound=BaseModel)
T = TypeVar("T")


class OpenAICompatibleInferenceAdapter(Generic[ConfigT]):
    """An inference provider in front of an OpenAI-compatible service."""

    provider_type: ClassVar[str] = "remote::openai-compatible"
    provider_data_key: ClassVar[str | None] = None
    """The provider-data key whose value replaces the configured key for one request."""
    requires_api_key: ClassVar[bool] = True
    """Refuse a request that has no key (rather than let the service do it)."""
    supports_top_k: ClassVar[bool] = False
    supports_repetition_penalty: ClassVar[bool] = False
    max_tokens_field: ClassVar[str] = "max_tokens"
    stream_usage: ClassVar[bool] = True
    """Ask for token counts at the end of a stream (`stream_options.include_usage`)."""
    missing_model_hint: ClassVar[str] = ""
    """Added to the error for a model the service does not list."""

    def __init__(self, config: ConfigT, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.provider_id: str = context.provider_id
        self.client: Transport = self.make_client()
        self.dialect = Dialect(
            provider_type=self.provider_type,
            top_k=self.supports_top_k,
            repetition_penalty=self.supports_repetition_penalty,
            default_max_tokens=self.default_max_tokens(),
            max_tokens_field=self.max_tokens_field,
            stream_usage=self.stream_usage,
        )

    # ---- what a subclass says about its service ------------------------------------------

    def make_client(self) -> Transport:
        """What carries OpenAI-shaped requests to the service: HTTP by default (a
        subclass whose service speaks another protocol translates in its own transport)."""
        config = cast(RemoteInferenceConfig, self.config)
        return RemoteClient(
            self.provider_id,
            self.base_url(),
            api_key=self.api_key(),
            provider_data_key=self.provider_data_key,
            requires_api_key=self.requires_api_key,
            tls_verify=self.tls_verify(),
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            max_connections=config.max_connections,
        )

    def base_url(self) -> str:
        """The URL that OpenAI's routes (`/chat/completions` ...) are relative to."""
        raise NotImplementedError

    def api_key(self) -> SecretStr | None:
        """The configured key, sent as a bearer token."""
        return None

    def tls_verify(self) -> bool | str:
        """Verify the service's certificate (True), don't (False), or with this CA file."""
        return True

    def default_max_tokens(self) -> int | None:
        """max_tokens for a Llama Stack request that sets none (None: the service decides)."""
        return None

    # ---- plumbing ------------------------------------------------------------------------

    def _translate(self, convert: Callable[[Any], T], data: Any) -> T:
        """`convert(data)` for an answer of the service; a malformed one is its failure."""
        try:
            return convert(data)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ProviderError(
                f"unexpected answer from {self.client.base_url}: {exc}",
                provider_id=self.provider_id,
            ) from None

    async def close(self) -> None:
        """Close the connections this event loop opened."""
        await self.client.aclose()

    # ---- models --------------------------------------------------------------------------

    async def list_models(self) -> list[Model] | None:
        """The models the service serves, or None if it does not list them."""
        data = await self.client.request_json("GET", "models", missing_ok=True)
        if data is None:
            return None
        return self._translate(self._models_from_listing, data)

    def _models_from_listing(self, data: Any) -> list[Model]:
        return [
            Model(
                identifier=item["id"],
                provider_resource_id=item["id"],
                provider_id=self.provider_id,
                model_type=ModelType.llm,
                metadata={k: item[k] for k in ("owned_by", "created") if item.get(k) is not None},
            )
            for item in data["data"]
        ]

    def serves(self, model_id: str, served: set[str]) -> bool:
        return model_id in served

    async def register_model(self, model: Model) -> Model:
        """Accept `model` if the service lists it, or lists no models, or cannot be asked
        now (unreachable, no key yet): registering must not need the service up."""
        wanted = model.provider_resource_id or model.identifier
        try:
            listed = await self.list_models()
        except StackError as exc:
            logger.warning(
                "provider %r: cannot check that it serves %r, registering it anyway: %s",
                self.provider_id,
                wanted,
                exc.message,
            )
            return model
        if listed is None:
            return model
        served = {m.provider_resource_id or m.identifier for m in listed}
        if not self.serves(wanted, served):
            names = sorted(served)
            shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
            hint = self.missing_model_hint.format(model=wanted)
            raise BadRequestError(
                f"provider '{self.provider_id}' does not serve model {wanted!r} "
                f"(it serves: {shown or 'none'}){hint}",
                field="provider_model_id",
            )
        return model

    async def unregister_model(self, provider_model_id: str) -> None:
        return None

    # ---- OpenAI routes: passed through -----------------------------------------------------

    @staticmethod
    def _passthrough_body(request: Any, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = request.model_dump(mode="json", exclude_none=True, by_alias=True)
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion:
        data = await self.client.request_json(
            "POST", "chat/completions", self._passthrough_body(request, stream=False)
        )
        return self._translate(OpenAIChatCompletion.model_validate, data)

    async def openai_chat_completion_stream(
        self, request: OpenAIChatCompletionRequest
    ) -> AsyncIterator[OpenAIChatCompletionChunk]:
        events = await self.client.stream_sse(
            "chat/completions", self._passthrough_body(request, stream=True)
        )
        async with aclosing(events):
            async for data in events:
                yield self._translate(_chat_chunk, data)

    async def openai_completion(self, request: OpenAICompletionRequest) -> OpenAICompletion:
        data = await self.client.request_json(
            "POST", "completions", self._passthrough_body(request, stream=False)
        )
        return self._translate(OpenAICompletion.model_validate, data)

    async def openai_completion_stream(
        self, request: OpenAICompletionRequest
    ) -> AsyncIterator[OpenAICompletion]:
        events = await self.client.stream_sse(
            "completions", self._passthrough_body(request, stream=True)
        )
        async with aclosing(events):
            async for data in events:
                yield self._translate(_completion_chunk, data)

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        data = await self.client.request_json(
            "POST", "embeddings", self._passthrough_body(request, stream=False)
        )
        return self._translate(_embeddings_response, data)

    # ---- Llama Stack routes: translated ------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        body = translate.chat_request_to_openai(request, self.dialect)
        data = await self.client.request_json("POST", "chat/completions", body)
        return self._translate(translate.chat_response_from_openai, data)

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        body = translate.chat_request_to_openai(request, self.dialect, stream=True)
        events = await self.client.stream_sse("chat/completions", body)
        translator = translate.ChatStreamTranslator()
        yield translator.start()
        async with aclosing(events):
            async for data in events:
                for chunk in self._translate(translator.feed, data):
                    yield chunk
        for chunk in translator.finish():
            yield chunk

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        body = translate.completion_request_to_openai(request, self.dialect)
        data = await self.client.request_json("POST", "completions", body)
        return self._translate(translate.completion_response_from_openai, data)

    async def completion_stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        body = translate.completion_request_to_openai(request, self.dialect, stream=True)
        events = await self.client.stream_sse("completions", body)
        translator = translate.CompletionStreamTranslator()
        async with aclosing(events):
            async for data in events:
                for chunk in self._translate(translator.feed, data):
                    yield chunk
        yield translator.finish()

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        body = translate.embeddings_request_to_openai(request, self.dialect)
        data = await self.client.request_json("POST", "embeddings", body)
        return self._translate(translate.embeddings_from_openai, data)


def _chat_chunk(data: Any) -> OpenAIChatCompletionChunk:
    # Some services leave out `finish_reason` until the last chunk; ours always has it.
    for choice in data.get("choices") or []:
        choice.setdefault("finish_reason", None)
    return OpenAIChatCompletionChunk.model_validate(data)


def _completion_chunk(data: Any) -> OpenAICompletion:
    for choice in data.get("choices") or []:
        choice.setdefault("finish_reason", None)
    return OpenAICompletion.model_validate(data)


def _embeddings_response(data: Any) -> OpenAIEmbeddingsResponse:
    if isinstance(data, dict) and data.get("usage") is None:
        data["usage"] = {"prompt_tokens": 0, "total_tokens": 0}
    return OpenAIEmbeddingsResponse.model_validate(data)
