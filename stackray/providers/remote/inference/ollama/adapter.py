"""`remote::ollama`: the Llama Stack routes over Ollama's own API.

Chat goes to `/api/chat`, completion to `/api/generate` (raw: no chat template),
embeddings to `/api/embed`; the served models come from `/api/tags`. Streamed answers are
JSON lines; each is recast as the OpenAI chunk it amounts to, so the stream translators
of the OpenAI-compatible adapters apply unchanged. The OpenAI routes pass through to
Ollama's OpenAI-compatible API under `/v1`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from stackray.api.common import ToolChoice
from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    TextTruncation,
)
from stackray.api.models import Model, ModelType
from stackray.providers.inline.inference.transformers.convert import (
    content_text,
    llama_messages_to_dicts,
    tool_definition_to_openai,
)
from stackray.providers.remote.inference import translate
from stackray.providers.remote.inference.client import RemoteClient
from stackray.providers.remote.inference.ollama.config import OllamaImplConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter

# Ollama's names for the sampling options that differ from OpenAI's.
_OPTION_NAMES = {"max_tokens": "num_predict", "repetition_penalty": "repeat_penalty"}


class OllamaInferenceAdapter(OpenAICompatibleInferenceAdapter[OllamaImplConfig]):
    """`remote::ollama`: an Ollama server at `url`."""

    provider_type = "remote::ollama"
    requires_api_key = False
    supports_top_k = True
    supports_repetition_penalty = True
    missing_model_hint = "; pull it with `ollama pull {model}`"

    def base_url(self) -> str:
        return f"{self.config.url.rstrip('/')}/v1"

    @property
    def http(self) -> RemoteClient:
        """The HTTP client (Ollama's own routes stream JSON lines)."""
        assert isinstance(self.client, RemoteClient)
        return self.client

    def _api(self, route: str) -> str:
        return f"{self.config.url.rstrip('/')}/api/{route}"

    async def initialize(self) -> None:
        if self.config.raise_on_connect_error:
            await self.client.request_json("GET", self._api("version"))

    # ---- models --------------------------------------------------------------------------

    async def list_models(self) -> list[Model] | None:
        data = await self.client.request_json("GET", self._api("tags"))
        return self._translate(self._models_from_tags, data)

    def _models_from_tags(self, data: Any) -> list[Model]:
        return [
            Model(
                identifier=item["name"],
                provider_resource_id=item["name"],
                provider_id=self.provider_id,
                model_type=ModelType.llm,
                metadata=dict(item.get("details") or {}),
            )
            for item in data.get("models") or []
        ]

    def serves(self, model_id: str, served: set[str]) -> bool:
        # Ollama takes "llama3.2" for "llama3.2:latest".
        return model_id in served or f"{model_id}:latest" in served

    # ---- requests ------------------------------------------------------------------------

    def _options(self, params: Any) -> dict[str, Any]:
        sampling = translate.sampling_to_openai(params, self.dialect)
        return {_OPTION_NAMES.get(k, k): v for k, v in sampling.items()}

    def _format(self, response_format: Any) -> dict[str, Any] | None:
        converted = translate.response_format_to_openai(response_format, self.dialect)
        return converted["json_schema"]["schema"] if converted is not None else None

    def _no_logprobs(self, logprobs: Any) -> None:
        if logprobs is not None:
            raise BadRequestError(
                "remote::ollama does not return log probabilities", field="logprobs"
            )

    def _chat_body(self, request: ChatCompletionRequest, stream: bool) -> dict[str, Any]:
        self._no_logprobs(request.logprobs)
        body: dict[str, Any] = {
            "model": request.model_id,
            "messages": ollama_messages(
                llama_messages_to_dicts(request.messages, translate.content_to_openai)
            ),
            "options": self._options(request.sampling_params),
            "stream": stream,
        }
        choice = request.tool_config.tool_choice if request.tool_config else ToolChoice.auto
        if request.tools and choice != ToolChoice.none:
            if choice != ToolChoice.auto:
                raise BadRequestError(
                    "remote::ollama cannot force a tool call; use tool_choice auto or none",
                    field="tool_config.tool_choice",
                )
            body["tools"] = [tool_definition_to_openai(t) for t in request.tools]
        schema = self._format(request.response_format)
        if schema is not None:
            body["format"] = schema
        return body

    def _generate_body(self, request: CompletionRequest, stream: bool) -> dict[str, Any]:
        self._no_logprobs(request.logprobs)
        body: dict[str, Any] = {
            "model": request.model_id,
            "prompt": content_text(request.content, "content"),
            "raw": True,
            "options": self._options(request.sampling_params),
            "stream": stream,
        }
        schema = self._format(request.response_format)
        if schema is not None:
            body["format"] = schema
        return body

    # ---- Llama Stack routes --------------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        data = await self.client.request_json(
            "POST", self._api("chat"), self._chat_body(request, stream=False)
        )
        return self._translate(
            lambda d: translate.chat_response_from_openai(_chat_as_openai(d)), data
        )

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        lines = await self.http.stream_json_lines(
            self._api("chat"), self._chat_body(request, stream=True)
        )
        translator = translate.ChatStreamTranslator()
        recast = _ChunkRecaster()
        yield translator.start()
        async with aclosing(lines):
            async for line in lines:
                for chunk in self._translate(lambda d: translator.feed(recast.chat(d)), line):
                    yield chunk
        for chunk in translator.finish():
            yield chunk

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        data = await self.client.request_json(
            "POST", self._api("generate"), self._generate_body(request, stream=False)
        )
        return self._translate(
            lambda d: translate.completion_response_from_openai(_generate_as_openai(d)), data
        )

    async def completion_stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        lines = await self.http.stream_json_lines(
            self._api("generate"), self._generate_body(request, stream=True)
        )
        translator = translate.CompletionStreamTranslator()
        async with aclosing(lines):
            async for line in lines:
                for chunk in self._translate(
                    lambda d: translator.feed(_generate_as_openai(d)), line
                ):
                    yield chunk
        yield translator.finish()

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        if request.text_truncation == TextTruncation.start:
            raise BadRequestError(
                "remote::ollama truncates texts at the end only", field="text_truncation"
            )
        body: dict[str, Any] = {
            "model": request.model_id,
            "input": [content_text(c, f"contents[{i}]") for i, c in enumerate(request.contents)],
            # Ollama truncates unless told not to; Llama Stack's default is not to.
            "truncate": request.text_truncation == TextTruncation.end,
        }
        if request.output_dimension is not None:
            body["dimensions"] = request.output_dimension
        data = await self.client.request_json("POST", self._api("embed"), body)
        return self._translate(
            lambda d: EmbeddingsResponse(
                embeddings=[[float(x) for x in e] for e in d["embeddings"]]
            ),
            data,
        )


def ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style message dicts as Ollama takes them: images as base64 beside the text,
    tool-call arguments as objects, tool results named by their tool."""
    tool_names: dict[str, str] = {}
    out = []
    for i, m in enumerate(messages):
        msg: dict[str, Any] = {"role": m["role"]}
        content = m.get("content")
        if isinstance(content, list):
            texts, images = [], []
            for part in content:
                if part["type"] == "text":
                    texts.append(part["text"])
                    continue
                url = part["image_url"]["url"]
                if not url.startswith("data:"):
                    raise BadRequestError(
                        "remote::ollama takes images as data, not URLs",
                        field=f"messages[{i}].content",
                    )
                images.append(url.partition(",")[2])
            msg["content"] = "".join(texts)
            msg["images"] = images
        else:
            msg["content"] = content or ""
        for call in m.get("tool_calls") or []:
            name = call["function"]["name"]
            tool_names[call["id"]] = name
            try:
                arguments = json.loads(call["function"]["arguments"] or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                raise BadRequestError(
                    "remote::ollama takes tool call arguments as a JSON object",
                    field=f"messages[{i}].tool_calls",
                )
            msg.setdefault("tool_calls", []).append(
                {"function": {"name": name, "arguments": arguments}}
            )
        if m["role"] == "tool" and m.get("tool_call_id") in tool_names:
            msg["tool_name"] = tool_names[m["tool_call_id"]]
        out.append(msg)
    return out


def _usage(data: dict[str, Any]) -> dict[str, int] | None:
    if not data.get("done"):
        return None
    prompt, completion = int(data.get("prompt_eval_count") or 0), int(data.get("eval_count") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finish_reason(data: dict[str, Any]) -> str | None:
    return (data.get("done_reason") or "stop") if data.get("done") else None


def _chat_as_openai(data: dict[str, Any]) -> dict[str, Any]:
    """A whole `/api/chat` answer as an OpenAI chat completion."""
    message = data.get("message") or {}
    return {
        "choices": [
            {
                "index": 0,
                "message": {
                    "content": message.get("content") or "",
                    "tool_calls": message.get("tool_calls") or [],
                },
                "finish_reason": _finish_reason(data),
            }
        ],
        "usage": _usage(data),
    }


def _generate_as_openai(data: dict[str, Any]) -> dict[str, Any]:
    """An `/api/generate` answer (or line of one) as an OpenAI completion (chunk)."""
    return {
        "choices": [
            {"index": 0, "text": data.get("response") or "", "finish_reason": _finish_reason(data)}
        ],
        "usage": _usage(data),
    }


class _ChunkRecaster:
    """Lines of a streamed `/api/chat` as OpenAI chunks. Ollama sends each tool call whole,
    in one line; they are numbered across the stream as OpenAI's `index`."""

    def __init__(self) -> None:
        self._calls = 0

    def chat(self, data: dict[str, Any]) -> dict[str, Any]:
        message = data.get("message") or {}
        delta: dict[str, Any] = {"content": message.get("content") or ""}
        calls = []
        for call in message.get("tool_calls") or []:
            calls.append({"index": self._calls, **call})
            self._calls += 1
        if calls:
            delta["tool_calls"] = calls
        return {
            "choices": [{"index": 0, "delta": delta, "finish_reason": _finish_reason(data)}],
            "usage": _usage(data),
        }
