"""`remote::tgi`: a Text Generation Inference server, through its own protocol.

- Chat (Llama Stack and OpenAI routes) goes to TGI's Messages API (`/v1/chat/completions`,
  OpenAI's wire format; the server applies the model's chat template), and OpenAI
  completions to `/v1/completions`.
- Llama Stack completions go to TGI's native `/generate` and `/generate_stream`
  (`{inputs, parameters}`; a stream of token events ending with `generated_text` and
  `details`).
- The model is the one the server says it serves (`GET /info`).
- TGI serves no embeddings: an embeddings request is refused, naming the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, ClassVar

from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
)
from stackray.api.models import Model, ModelType
from stackray.providers.remote.inference import translate
from stackray.providers.remote.inference.client import RemoteClient
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter

_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


class TGIInferenceAdapter(OpenAICompatibleInferenceAdapter[Any]):
    """`remote::tgi`; see the module docstring."""

    provider_type = "remote::tgi"
    requires_api_key = False
    supports_top_k = True
    supports_repetition_penalty = True
    generate_path: ClassVar[str] = "generate"
    """Where completions go, relative to the server's root (`stream_path` when streamed)."""
    stream_path: ClassVar[str] = "generate_stream"

    def __init__(self, config: Any, deps: dict[Any, Any], context: Any) -> None:
        super().__init__(config, deps, context)
        self.native = self.native_client(self.root_url())

    def root_url(self) -> str:
        """The TGI server's root: its own routes are under it, the Messages API under /v1."""
        return str(self.config.url)

    def native_client(self, url: str) -> RemoteClient:
        """The client of TGI's own routes (`/info`, `/generate`, `/generate_stream`)."""
        config = self.config
        return RemoteClient(
            self.provider_id,
            url,
            api_key=self.api_key(),
            provider_data_key=self.provider_data_key,
            requires_api_key=self.requires_api_key,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            max_connections=config.max_connections,
        )

    def base_url(self) -> str:
        return f"{self.root_url().rstrip('/')}/v1"

    async def close(self) -> None:
        await super().close()
        await self.native.aclose()

    # ---- models ----------------------------------------------------------------------

    async def list_models(self) -> list[Model] | None:
        info = await self.native.request_json("GET", "info")
        return self._translate(self._models_from_info, info)

    def _models_from_info(self, info: Any) -> list[Model]:
        model_id = str(info["model_id"])
        metadata = {
            k: info[k] for k in ("max_total_tokens", "max_input_tokens", "version") if k in info
        }
        return [
            Model(
                identifier=model_id,
                provider_resource_id=model_id,
                provider_id=self.provider_id,
                model_type=ModelType.llm,
                metadata=metadata,
            )
        ]

    # ---- completions: TGI's native protocol ------------------------------------------

    def generate_body(self, request: CompletionRequest, stream: bool) -> dict[str, Any]:
        """TGI's `{inputs, parameters}` for a Llama Stack completion."""
        if request.response_format is not None:
            raise BadRequestError(
                f"{self.provider_type} completions take no response_format", field="response_format"
            )
        if request.logprobs is not None:
            raise BadRequestError(
                f"{self.provider_type} completions return no logprobs", field="logprobs"
            )
        openai = translate.sampling_to_openai(request.sampling_params, self.dialect)
        parameters: dict[str, Any] = {"details": True}
        if openai.get("temperature", 0.0) > 0:
            # TGI takes only a positive temperature and a top_p below 1; greedy is
            # do_sample false.
            parameters["do_sample"] = True
            parameters["temperature"] = openai["temperature"]
            if "top_p" in openai and 0 < openai["top_p"] < 1:
                parameters["top_p"] = openai["top_p"]
            if "top_k" in openai:
                parameters["top_k"] = openai["top_k"]
        else:
            parameters["do_sample"] = False
        if "repetition_penalty" in openai:
            parameters["repetition_penalty"] = openai["repetition_penalty"]
        if "max_tokens" in openai:
            parameters["max_new_tokens"] = openai["max_tokens"]
        if openai.get("stop"):
            stop = openai["stop"]
            parameters["stop"] = [stop] if isinstance(stop, str) else list(stop)
        body: dict[str, Any] = {
            "inputs": translate.content_text(request.content, "content"),
            "parameters": parameters,
        }
        if stream:
            body["stream"] = True
        return body

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        data = await self.native.request_json(
            "POST", self.generate_path, self.generate_body(request, stream=False)
        )
        return self._translate(_completion_from_generate, data)

    async def completion_stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        events = await self.native.stream_sse(
            self.stream_path, self.generate_body(request, stream=True)
        )
        translator = translate.CompletionStreamTranslator()
        async with aclosing(events):
            async for data in events:
                for chunk in self._translate(translator.feed, _openai_chunk(data)):
                    yield chunk
        yield translator.finish()

    # ---- embeddings: not served by TGI -------------------------------------------------

    def _no_embeddings(self, model: str) -> BadRequestError:
        return BadRequestError(
            f"provider '{self.provider_id}' ({self.provider_type}) serves no embeddings; "
            f"{model!r} cannot embed (use an embedding provider)",
            field="model_id",
        )

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        raise self._no_embeddings(request.model_id)

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        raise self._no_embeddings(request.model)


def _usage(details: Any) -> dict[str, int] | None:
    if not isinstance(details, dict) or details.get("generated_tokens") is None:
        return None
    generated = int(details["generated_tokens"])
    prompt = len(details.get("prefill") or [])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": generated,
        "total_tokens": prompt + generated,
    }


def _completion_from_generate(data: Any) -> CompletionResponse:
    # POST /generate answers one object (POST / answers a list of them).
    if isinstance(data, list):
        data = data[0]
    details = data.get("details") or {}
    openai = {
        "choices": [
            {
                "text": data["generated_text"],
                "finish_reason": _FINISH.get(str(details.get("finish_reason")), "stop"),
            }
        ],
        "usage": _usage(details),
    }
    return translate.completion_response_from_openai(openai)


def _openai_chunk(event: Any) -> dict[str, Any]:
    """One TGI stream event as an OpenAI completion chunk (special tokens, e.g. the end
    of sequence, carry no text)."""
    token = event.get("token") or {}
    text = "" if token.get("special") else str(token.get("text") or "")
    details = event.get("details")
    choice: dict[str, Any] = {"index": 0, "text": text}
    if isinstance(details, dict) and details.get("finish_reason"):
        choice["finish_reason"] = _FINISH.get(details["finish_reason"], "stop")
    return {"choices": [choice], "usage": _usage(details)}
