"""`remote::watsonx`: IBM watsonx.ai through its own API.

- Authentication: the API key is exchanged at IBM Cloud IAM for a bearer token
  (`POST iam_url`, form `grant_type=urn:ibm:params:oauth:grant-type:apikey`), kept until a
  minute before it expires.
- Chat (Llama Stack and OpenAI routes): `/ml/v1/text/chat` and `/ml/v1/text/chat_stream`,
  whose messages and answers are OpenAI's shape with `model_id` and `project_id`.
- Completions: `/ml/v1/text/generation` and `/ml/v1/text/generation_stream`
  (`{input, model_id, project_id, parameters}` answered `{results: [{generated_text,
  stop_reason, ...}]}`).
- Embeddings: `/ml/v1/text/embeddings`; models: `/ml/v1/foundation_model_specs`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
from pydantic import SecretStr

from stackray.api.errors import BadRequestError, ServiceUnavailableError
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
from stackray.providers.remote.inference.client import RemoteClient, Transport, upstream_error
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.providers.remote.inference.watsonx.config import WatsonXConfig

TOKEN_MARGIN_S = 60.0
"""A token is renewed this long before IAM says it expires."""

_STOP = {"max_tokens": "length", "token_limit": "length", "time_limit": "length"}


class _IAMClient(RemoteClient):
    """A `RemoteClient` whose bearer token is the current IAM token."""

    token: str | None = None

    def api_key(self) -> str | None:
        return self.token


class WatsonXInferenceAdapter(OpenAICompatibleInferenceAdapter[WatsonXConfig]):
    """`remote::watsonx`; see the module docstring."""

    provider_type = "remote::watsonx"
    supports_top_k = True
    supports_repetition_penalty = True
    stream_usage = False

    def __init__(self, config: WatsonXConfig, deps: dict[Any, Any], context: Any) -> None:
        super().__init__(config, deps, context)
        self._expires = 0.0
        self._token_lock: asyncio.Lock | None = None

    def make_client(self) -> Transport:
        config = self.config
        return _IAMClient(
            self.provider_id,
            self.base_url(),
            timeout_s=float(config.timeout) if config.timeout is not None else config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            max_connections=config.max_connections,
        )

    def base_url(self) -> str:
        return f"{self.config.url.rstrip('/')}/ml/v1"

    def api_key(self) -> SecretStr | None:
        return self.config.api_key

    # ---- authentication ----------------------------------------------------------------

    async def _authorize(self) -> None:
        key = self.config.api_key
        if key is None or not key.get_secret_value():
            raise BadRequestError(
                f"provider '{self.provider_id}' has no API key: set api_key in its config",
                field="api_key",
            )
        if self.config.project_id is None:
            raise BadRequestError(
                f"provider '{self.provider_id}' has no project_id: set it in its config",
                field="project_id",
            )
        client = self.client
        assert isinstance(client, _IAMClient)
        if client.token is not None and time.time() < self._expires:
            return
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            if client.token is not None and time.time() < self._expires:
                return
            where = f"POST {self.config.iam_url}"
            try:
                async with httpx.AsyncClient(timeout=self.config.connect_timeout_s * 3) as http:
                    response = await http.post(
                        self.config.iam_url,
                        data={
                            "grant_type": "urn:ibm:params:oauth:grant-type:apikey",
                            "apikey": key.get_secret_value(),
                        },
                        headers={"Accept": "application/json"},
                    )
            except httpx.TransportError as exc:
                raise ServiceUnavailableError(
                    f"provider '{self.provider_id}': cannot reach {where}: {exc}"
                ) from None
            if response.status_code >= 400:
                raise upstream_error(
                    self.provider_id, where, response.status_code, response.text[:500]
                )
            data = response.json()
            client.token = str(data["access_token"])
            self._expires = time.time() + float(data.get("expires_in", 3600)) - TOKEN_MARGIN_S

    def _path(self, route: str) -> str:
        return f"{route}?version={self.config.api_version}"

    async def _post(self, route: str, body: dict[str, Any]) -> Any:
        await self._authorize()
        return await self.client.request_json("POST", self._path(route), body)

    async def _stream(self, route: str, body: dict[str, Any]) -> AsyncIterator[Any]:
        await self._authorize()
        return await self.client.stream_sse(self._path(route), body)

    def _scoped(self, body: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI-shaped body as watsonx takes it: `model_id` and `project_id`."""
        body = dict(body)
        body["model_id"] = body.pop("model")
        body["project_id"] = self.config.project_id
        body.pop("stream", None)
        body.pop("stream_options", None)
        return body

    # ---- models ------------------------------------------------------------------------

    async def list_models(self) -> list[Model] | None:
        data = await self.client.request_json(
            "GET", self._path("foundation_model_specs"), missing_ok=True
        )
        if data is None:
            return None
        return self._translate(self._models_from_specs, data)

    def _models_from_specs(self, data: Any) -> list[Model]:
        models = []
        for spec in data["resources"]:
            functions = {f.get("id") for f in spec.get("functions") or []}
            kind = ModelType.embedding if "embedding" in functions else ModelType.llm
            models.append(
                Model(
                    identifier=spec["model_id"],
                    provider_resource_id=spec["model_id"],
                    provider_id=self.provider_id,
                    model_type=kind,
                )
            )
        return models

    # ---- chat: watsonx's chat API (OpenAI's shape) -------------------------------------

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion:
        body = self._scoped(self._passthrough_body(request, stream=False))
        data = await self._post("text/chat", body)
        return self._translate(_openai_chat, data)

    async def openai_chat_completion_stream(
        self, request: OpenAIChatCompletionRequest
    ) -> AsyncIterator[OpenAIChatCompletionChunk]:
        body = self._scoped(self._passthrough_body(request, stream=True))
        events = await self._stream("text/chat_stream", body)
        async with aclosing(events):  # type: ignore[type-var]
            async for data in events:
                yield self._translate(_openai_chat_chunk, data)

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        body = self._scoped(translate.chat_request_to_openai(request, self.dialect))
        data = await self._post("text/chat", body)
        return self._translate(translate.chat_response_from_openai, data)

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        body = self._scoped(translate.chat_request_to_openai(request, self.dialect, stream=True))
        events = await self._stream("text/chat_stream", body)
        translator = translate.ChatStreamTranslator()
        yield translator.start()
        async with aclosing(events):  # type: ignore[type-var]
            async for data in events:
                for chunk in self._translate(translator.feed, data):
                    yield chunk
        for chunk in translator.finish():
            yield chunk

    # ---- completions: text generation ------------------------------------------------

    def _generation_body(self, model: str, prompt: str, openai: dict[str, Any]) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        if openai.get("temperature", 0.0) > 0:
            parameters["decoding_method"] = "sample"
            for name in ("temperature", "top_p", "top_k"):
                if name in openai:
                    parameters[name] = openai[name]
        else:
            parameters["decoding_method"] = "greedy"
        if "repetition_penalty" in openai:
            parameters["repetition_penalty"] = openai["repetition_penalty"]
        if openai.get("max_tokens"):
            parameters["max_new_tokens"] = openai["max_tokens"]
        stop = openai.get("stop")
        if stop:
            parameters["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        return {
            "input": prompt,
            "model_id": model,
            "project_id": self.config.project_id,
            "parameters": parameters,
        }

    def _completion_body(self, request: CompletionRequest) -> dict[str, Any]:
        if request.response_format is not None or request.logprobs is not None:
            raise BadRequestError(
                f"{self.provider_type} completions take no response_format or logprobs",
                field="response_format" if request.response_format is not None else "logprobs",
            )
        openai = translate.sampling_to_openai(request.sampling_params, self.dialect)
        prompt = translate.content_text(request.content, "content")
        return self._generation_body(request.model_id, prompt, openai)

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        data = await self._post("text/generation", self._completion_body(request))
        return self._translate(
            translate.completion_response_from_openai, _openai_completion(data, "")
        )

    async def completion_stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        events = await self._stream("text/generation_stream", self._completion_body(request))
        translator = translate.CompletionStreamTranslator()
        async with aclosing(events):  # type: ignore[type-var]
            async for data in events:
                for chunk in self._translate(translator.feed, _openai_completion(data, "")):
                    yield chunk
        yield translator.finish()

    def _openai_completion_body(self, request: OpenAICompletionRequest) -> dict[str, Any]:
        if not isinstance(request.prompt, str):
            raise BadRequestError(
                f"{self.provider_type} completes one prompt, a string", field="prompt"
            )
        openai = self._passthrough_body(request, stream=False)
        return self._generation_body(request.model, request.prompt, openai)

    async def openai_completion(self, request: OpenAICompletionRequest) -> OpenAICompletion:
        data = await self._post("text/generation", self._openai_completion_body(request))
        return self._translate(
            OpenAICompletion.model_validate, _openai_completion(data, request.model)
        )

    async def openai_completion_stream(
        self, request: OpenAICompletionRequest
    ) -> AsyncIterator[OpenAICompletion]:
        events = await self._stream("text/generation_stream", self._openai_completion_body(request))
        async with aclosing(events):  # type: ignore[type-var]
            async for data in events:
                yield self._translate(
                    OpenAICompletion.model_validate, _openai_completion(data, request.model)
                )

    # ---- embeddings ----------------------------------------------------------------------

    async def _embed(self, model: str, texts: list[str]) -> list[list[float]]:
        data = await self._post(
            "text/embeddings",
            {"inputs": texts, "model_id": model, "project_id": self.config.project_id},
        )
        return self._translate(
            lambda d: [[float(x) for x in r["embedding"]] for r in d["results"]], data
        )

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        texts = translate.embedding_texts(request, self.dialect)
        return EmbeddingsResponse(embeddings=await self._embed(request.model_id, texts))

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        texts = [request.input] if isinstance(request.input, str) else list(request.input)
        if not all(isinstance(t, str) for t in texts):
            raise BadRequestError(f"{self.provider_type} embeds texts", field="input")
        vectors = await self._embed(request.model, [str(t) for t in texts])
        return OpenAIEmbeddingsResponse.model_validate(
            {
                "object": "list",
                "model": request.model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )


def _openai_chat(data: Any) -> OpenAIChatCompletion:
    data = dict(data)
    data.setdefault("model", data.get("model_id"))
    data.setdefault("object", "chat.completion")
    return OpenAIChatCompletion.model_validate(data)


def _openai_chat_chunk(data: Any) -> OpenAIChatCompletionChunk:
    data = dict(data)
    data.setdefault("model", data.get("model_id"))
    data.setdefault("object", "chat.completion.chunk")
    for choice in data.get("choices") or []:
        choice.setdefault("finish_reason", None)
    return OpenAIChatCompletionChunk.model_validate(data)


def _openai_completion(data: Any, model: str) -> dict[str, Any]:
    """watsonx's `{results: [...]}` (whole, or one stream event) as an OpenAI completion."""
    result = data["results"][0]
    reason = result.get("stop_reason")
    finish = None if reason in (None, "not_finished") else _STOP.get(reason, "stop")
    usage = None
    if finish is not None and result.get("generated_token_count") is not None:
        prompt = int(result.get("input_token_count") or 0)
        generated = int(result["generated_token_count"])
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": generated,
            "total_tokens": prompt + generated,
        }
    return {
        "id": f"cmpl-{data.get('created_at', '')}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": data.get("model_id") or model,
        "choices": [
            {"index": 0, "text": result.get("generated_text") or "", "finish_reason": finish}
        ],
        "usage": usage,
    }
