"""The Llama Stack inference routes carried over OpenAI's API, and back.

Remote adapters speak OpenAI's API to the services they front. These functions turn
`ChatCompletionRequest`, `CompletionRequest` and `EmbeddingsRequest` into OpenAI request
bodies and the services' answers into Llama Stack responses. They read answers as plain
JSON, so whatever extra fields a service adds pass unnoticed. Messages, tools and
sampling parameters go through the same conversions as `inline::transformers`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from stackray.api.common import (
    CompletionMessage,
    ImageContentItem,
    JsonSchemaResponseFormat,
    MetricInResponse,
    SamplingParams,
    StopReason,
    TextContentItem,
    TokenLogProbs,
    ToolCall,
    ToolChoice,
)
from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    ContentDelta,
    EmbeddingsRequest,
    EmbeddingsResponse,
    TextDelta,
    TextTruncation,
    ToolCallDelta,
    ToolCallParseStatus,
)
from stackray.providers.inline.inference.transformers.convert import (
    _logprobs_k,
    content_text,
    llama_messages_to_dicts,
    new_call_id,
    sampling_from_params,
    tool_definition_to_openai,
)


@dataclass(frozen=True)
class Dialect:
    """What one OpenAI-compatible service takes beyond OpenAI's own parameters."""

    provider_type: str
    top_k: bool = False
    """Takes `top_k` (top-k sampling)."""
    repetition_penalty: bool = False
    """Takes `repetition_penalty`."""
    default_max_tokens: int | None = None
    """Sent as max_tokens when a Llama Stack request sets none."""
    max_tokens_field: str = "max_tokens"
    """What chat completions call it (OpenAI's reasoning models take only
    `max_completion_tokens`)."""
    stream_usage: bool = True
    """Takes `stream_options.include_usage` (token counts at the end of a stream)."""


_FINISH_TO_STOP = {
    "stop": StopReason.end_of_turn,
    "eos": StopReason.end_of_turn,
    "content_filter": StopReason.end_of_turn,
    "length": StopReason.out_of_tokens,
    "tool_calls": StopReason.end_of_message,
    "function_call": StopReason.end_of_message,
}


def stop_reason(finish_reason: str | None, has_tool_calls: bool = False) -> StopReason:
    """The Llama Stack stop reason for an OpenAI `finish_reason` (any tool call ends a
    message, whatever the service calls it)."""
    if has_tool_calls:
        return StopReason.end_of_message
    return _FINISH_TO_STOP.get(finish_reason or "stop", StopReason.end_of_turn)


# ---- requests --------------------------------------------------------------------------


_IMAGE_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def _image_mime(data: str) -> str:
    try:
        head = base64.b64decode(data[:24] + "=" * (-len(data[:24]) % 4))
    except (binascii.Error, ValueError):
        return "image/png"
    return next((mime for magic, mime in _IMAGE_MAGIC if head.startswith(magic)), "image/png")


def image_url(item: ImageContentItem) -> str:
    """The URL (or a data URL of the inline bytes) of an image content item."""
    if item.image.url is not None:
        return item.image.url.uri
    data = item.image.data or ""
    return f"data:{_image_mime(data)};base64,{data}"


def content_to_openai(content: Any, where: str = "content") -> Any:
    """Text stays a string; content with images becomes OpenAI content parts."""
    if content is None or isinstance(content, str):
        return content or ""
    items = content if isinstance(content, list) else [content]
    if all(isinstance(item, TextContentItem) for item in items):
        return "".join(item.text for item in items)
    parts: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, ImageContentItem):
            parts.append({"type": "image_url", "image_url": {"url": image_url(item)}})
        else:
            parts.append({"type": "text", "text": content_text(item, where)})
    return parts


def sampling_to_openai(params: SamplingParams | None, dialect: Dialect) -> dict[str, Any]:
    """Sampling strategy, max_tokens, stop and repetition penalty as OpenAI parameters."""
    sampling, max_tokens, stop = sampling_from_params(params)
    body: dict[str, Any] = {}
    strategy = sampling["strategy"]
    if strategy == "greedy":
        body["temperature"] = 0.0
    elif strategy == "top_p":
        body["temperature"] = sampling["temperature"]
        body["top_p"] = sampling["top_p"]
    else:
        if not dialect.top_k:
            raise BadRequestError(
                f"{dialect.provider_type} does not take top_k sampling; use greedy or top_p",
                field="sampling_params.strategy",
            )
        body["temperature"] = sampling["temperature"]
        body["top_k"] = sampling["top_k"]
    penalty = sampling.get("repetition_penalty")
    if penalty is not None and penalty != 1.0:
        if not dialect.repetition_penalty:
            raise BadRequestError(
                f"{dialect.provider_type} does not take repetition_penalty",
                field="sampling_params.repetition_penalty",
            )
        body["repetition_penalty"] = penalty
    max_tokens = max_tokens or dialect.default_max_tokens
    if max_tokens:
        body["max_tokens"] = max_tokens
    if stop:
        body["stop"] = stop
    return body


def response_format_to_openai(response_format: Any, dialect: Dialect) -> dict[str, Any] | None:
    """`json_schema` becomes OpenAI's `{type: json_schema, json_schema: {name, schema}}`."""
    if response_format is None:
        return None
    if not isinstance(response_format, JsonSchemaResponseFormat):
        raise BadRequestError(
            f"{dialect.provider_type} takes response_format of type json_schema, not "
            f"{response_format.type}",
            field="response_format.type",
        )
    schema = response_format.json_schema
    title = schema.get("title")
    # OpenAI's names are [a-zA-Z0-9_-]{1,64}.
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", title)[:64] if isinstance(title, str) and title else ""
    return {"type": "json_schema", "json_schema": {"name": name or "response", "schema": schema}}


def tool_choice_to_openai(choice: ToolChoice | str | None) -> str | dict[str, Any]:
    if choice is None:
        return "auto"
    if isinstance(choice, ToolChoice):
        return choice.value
    return {"type": "function", "function": {"name": choice}}


def _stream_fields(dialect: Dialect) -> dict[str, Any]:
    fields: dict[str, Any] = {"stream": True}
    if dialect.stream_usage:
        fields["stream_options"] = {"include_usage": True}
    return fields


def chat_request_to_openai(
    request: ChatCompletionRequest, dialect: Dialect, *, stream: bool = False
) -> dict[str, Any]:
    """The body of `POST /chat/completions` for a Llama Stack chat completion request."""
    body: dict[str, Any] = {
        "model": request.model_id,
        "messages": llama_messages_to_dicts(request.messages, content_to_openai),
        **sampling_to_openai(request.sampling_params, dialect),
    }
    if "max_tokens" in body and dialect.max_tokens_field != "max_tokens":
        body[dialect.max_tokens_field] = body.pop("max_tokens")
    if request.tools:
        body["tools"] = [tool_definition_to_openai(t) for t in request.tools]
        choice = request.tool_config.tool_choice if request.tool_config else None
        body["tool_choice"] = tool_choice_to_openai(choice)
    response_format = response_format_to_openai(request.response_format, dialect)
    if response_format is not None:
        body["response_format"] = response_format
    top_k = _logprobs_k(request.logprobs)
    if top_k:
        body["logprobs"] = True
        body["top_logprobs"] = top_k
    if stream:
        body.update(_stream_fields(dialect))
    return body


def completion_request_to_openai(
    request: CompletionRequest, dialect: Dialect, *, stream: bool = False
) -> dict[str, Any]:
    """The body of `POST /completions` for a Llama Stack completion request."""
    body: dict[str, Any] = {
        "model": request.model_id,
        "prompt": content_text(request.content, "content"),
        **sampling_to_openai(request.sampling_params, dialect),
    }
    response_format = response_format_to_openai(request.response_format, dialect)
    if response_format is not None:
        body["response_format"] = response_format
    top_k = _logprobs_k(request.logprobs)
    if top_k:
        body["logprobs"] = top_k
    if stream:
        body.update(_stream_fields(dialect))
    return body


def embedding_texts(request: EmbeddingsRequest, dialect: Dialect) -> list[str]:
    """The texts to embed; the remote services take whole texts only."""
    if request.text_truncation not in (None, TextTruncation.none):
        raise BadRequestError(
            f"{dialect.provider_type} does not truncate texts; send texts the model takes whole",
            field="text_truncation",
        )
    return [content_text(c, f"contents[{i}]") for i, c in enumerate(request.contents)]


def embeddings_request_to_openai(request: EmbeddingsRequest, dialect: Dialect) -> dict[str, Any]:
    """The body of `POST /embeddings`. (`task_type` is a hint OpenAI's API has no place for.)"""
    body: dict[str, Any] = {
        "model": request.model_id,
        "input": embedding_texts(request, dialect),
        "encoding_format": "float",
    }
    if request.output_dimension is not None:
        body["dimensions"] = request.output_dimension
    return body


# ---- answers ---------------------------------------------------------------------------


def metrics_from_usage(usage: Any) -> list[MetricInResponse] | None:
    """Token counts of an OpenAI `usage` object as Llama Stack metrics."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt + completion)
    return [
        MetricInResponse(metric="prompt_tokens", value=prompt),
        MetricInResponse(metric="completion_tokens", value=completion),
        MetricInResponse(metric="total_tokens", value=total),
    ]


def parse_tool_call(call_id: str | None, name: str, arguments: str) -> ToolCall | None:
    """A tool call whose arguments are a JSON object, or None if they are not."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
        return ToolCall(
            call_id=call_id or new_call_id(),
            tool_name=name,
            arguments=parsed,
            arguments_json=json.dumps(parsed),
        )
    except (ValueError, ValidationError):
        return None


def tool_call_from_openai(call: dict[str, Any]) -> ToolCall:
    """A whole OpenAI tool call; arguments that are no JSON object stay a string."""
    function = call.get("function") or {}
    name = str(function.get("name") or "")
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    parsed = parse_tool_call(call.get("id"), name, text)
    if parsed is not None:
        return parsed
    return ToolCall(call_id=call.get("id") or new_call_id(), tool_name=name, arguments=text)


def _message_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content or ""


def chat_logprobs(logprobs: Any) -> list[TokenLogProbs] | None:
    """OpenAI chat logprobs (`content: [{token, logprob, top_logprobs}]`), per token."""
    if not isinstance(logprobs, dict) or not logprobs.get("content"):
        return None
    out = []
    for entry in logprobs["content"]:
        top = {t["token"]: t["logprob"] for t in entry.get("top_logprobs") or []}
        out.append(TokenLogProbs(logprobs_by_token=top or {entry["token"]: entry["logprob"]}))
    return out


def completion_logprobs(logprobs: Any) -> list[TokenLogProbs] | None:
    """Legacy completions logprobs (`top_logprobs: [{token: logprob}]`), per token."""
    if not isinstance(logprobs, dict):
        return None
    if logprobs.get("top_logprobs"):
        return [TokenLogProbs(logprobs_by_token=dict(t or {})) for t in logprobs["top_logprobs"]]
    if logprobs.get("tokens") and logprobs.get("token_logprobs"):
        return [
            TokenLogProbs(logprobs_by_token={t: lp})
            for t, lp in zip(logprobs["tokens"], logprobs["token_logprobs"], strict=False)
        ]
    return chat_logprobs(logprobs)


def _first_choice(data: Any) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices:
        raise ValueError("the answer has no choices")
    return choices[0]


def chat_response_from_openai(data: Any) -> ChatCompletionResponse:
    """A Llama Stack chat completion from an OpenAI one (its first choice)."""
    choice = _first_choice(data)
    message = choice.get("message") or {}
    calls = [tool_call_from_openai(c) for c in message.get("tool_calls") or []]
    return ChatCompletionResponse(
        completion_message=CompletionMessage(
            content=_message_text(message.get("content")),
            stop_reason=stop_reason(choice.get("finish_reason"), bool(calls)),
            tool_calls=calls,
        ),
        logprobs=chat_logprobs(choice.get("logprobs")),
        metrics=metrics_from_usage(data.get("usage")),
    )


def completion_response_from_openai(data: Any) -> CompletionResponse:
    """A Llama Stack completion from an OpenAI one (its first choice)."""
    choice = _first_choice(data)
    return CompletionResponse(
        content=choice.get("text") or "",
        stop_reason=stop_reason(choice.get("finish_reason")),
        logprobs=completion_logprobs(choice.get("logprobs")),
        metrics=metrics_from_usage(data.get("usage")),
    )


def embeddings_from_openai(data: Any) -> EmbeddingsResponse:
    items = sorted(data["data"], key=lambda d: d.get("index", 0))
    return EmbeddingsResponse(embeddings=[[float(x) for x in d["embedding"]] for d in items])


def _event(
    kind: ChatCompletionResponseEventType, delta: ContentDelta, **fields: Any
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=kind, delta=delta, **fields)
    )


@dataclass
class _PendingToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChatStreamTranslator:
    """The chunks of one streamed OpenAI chat completion as Llama Stack stream chunks.

    Text and log probabilities go on as they arrive. Tool calls come in pieces (the id
    and name first, then the arguments in any number of chunks, each call told apart by
    its `index`); each whole call is sent as one `ToolCallDelta` (`succeeded`, or
    `failed` with the raw arguments if they are no JSON object) when the choice finishes.
    The `complete` event carries the stop reason and the token counts of the last
    `usage`, which some services send after the finishing chunk.
    """

    def __init__(self) -> None:
        self._calls: dict[int, _PendingToolCall] = {}
        self._finish_reason: str | None = None
        self._sent_calls = False
        self._usage: Any = None

    def start(self) -> ChatCompletionResponseStreamChunk:
        return _event(ChatCompletionResponseEventType.start, TextDelta(text=""))

    def feed(self, data: Any) -> list[ChatCompletionResponseStreamChunk]:
        """What one OpenAI chunk (a decoded server-sent event) amounts to."""
        out: list[ChatCompletionResponseStreamChunk] = []
        if data.get("usage"):
            self._usage = data["usage"]
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = _message_text(delta.get("content"))
            logprobs = chat_logprobs(choice.get("logprobs"))
            if text or logprobs:
                out.append(
                    _event(
                        ChatCompletionResponseEventType.progress,
                        TextDelta(text=text),
                        logprobs=logprobs,
                    )
                )
            for position, piece in enumerate(delta.get("tool_calls") or []):
                index = piece.get("index")
                call = self._calls.setdefault(
                    index if index is not None else position, _PendingToolCall()
                )
                call.id = piece.get("id") or call.id
                function = piece.get("function") or {}
                call.name += function.get("name") or ""
                arguments = function.get("arguments")
                if arguments:
                    call.arguments.append(
                        arguments if isinstance(arguments, str) else json.dumps(arguments)
                    )
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                out.extend(self._tool_call_events())
        return out

    def _tool_call_events(self) -> list[ChatCompletionResponseStreamChunk]:
        if self._sent_calls:
            return []
        self._sent_calls = True
        out = []
        for index in sorted(self._calls):
            call = self._calls[index]
            raw = "".join(call.arguments)
            parsed = parse_tool_call(call.id, call.name, raw)
            delta = (
                ToolCallDelta(tool_call=parsed, parse_status=ToolCallParseStatus.succeeded)
                if parsed is not None
                else ToolCallDelta(tool_call=raw, parse_status=ToolCallParseStatus.failed)
            )
            out.append(_event(ChatCompletionResponseEventType.progress, delta))
        return out

    def finish(self) -> list[ChatCompletionResponseStreamChunk]:
        """The last chunks, once the stream has ended."""
        out = self._tool_call_events()
        complete = _event(
            ChatCompletionResponseEventType.complete,
            TextDelta(text=""),
            stop_reason=stop_reason(self._finish_reason, bool(self._calls)),
        )
        complete.metrics = metrics_from_usage(self._usage)
        out.append(complete)
        return out


class CompletionStreamTranslator:
    """The chunks of one streamed OpenAI completion as Llama Stack stream chunks; the
    last one carries the stop reason and the token counts."""

    def __init__(self) -> None:
        self._finish_reason: str | None = None
        self._usage: Any = None

    def feed(self, data: Any) -> list[CompletionResponseStreamChunk]:
        if data.get("usage"):
            self._usage = data["usage"]
        out = []
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            text = choice.get("text") or ""
            logprobs = completion_logprobs(choice.get("logprobs"))
            if text or logprobs:
                out.append(CompletionResponseStreamChunk(delta=text, logprobs=logprobs))
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> CompletionResponseStreamChunk:
        return CompletionResponseStreamChunk(
            delta="",
            stop_reason=stop_reason(self._finish_reason),
            metrics=metrics_from_usage(self._usage),
        )
