"""The Inference API: chat completion, completion and embeddings.

Two families of routes share one provider protocol:
- the Llama Stack routes (`/v1/inference/...`), whose requests are strict: an unknown
  field is an error that names it;
- the OpenAI-compatible routes (`/v1/openai/v1/chat/completions`, `/completions`,
  `/embeddings`), whose requests keep unknown fields, since OpenAI SDKs newer than the
  contract send fields it does not list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import Enum
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import ConfigDict, Field, model_validator

from stackray.api.common import (
    ApiModel,
    CompletionMessage,
    InterleavedContent,
    InterleavedContentItem,
    JsonValue,
    LogProbConfig,
    Message,
    MetricInResponse,
    OpenAIApiModel,
    ResponseFormat,
    SamplingParams,
    StopReason,
    TokenLogProbs,
    ToolCall,
    ToolChoice,
    ToolConfig,
    ToolDefinition,
    ToolPromptFormat,
)
from stackray.api.datatypes import Api
from stackray.api.models import ListModelsResponse, Model
from stackray.api.routes import Param, Route

# ---------------------------------------------------------------------------------------
# Llama Stack chat completion
# ---------------------------------------------------------------------------------------


class ChatCompletionRequest(ApiModel):
    """The body of `POST /v1/inference/chat-completion`.

    After validation `sampling_params` and `tool_config` are always set: the deprecated
    top-level `tool_choice` and `tool_prompt_format` are folded into `tool_config`, and
    contradicting values are an error.
    """

    model_id: str
    messages: list[Message]
    sampling_params: SamplingParams | None = Field(default_factory=SamplingParams)
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoice | None = Field(
        default=None, description="Deprecated: use tool_config.tool_choice."
    )
    tool_prompt_format: ToolPromptFormat | None = Field(
        default=None, description="Deprecated: use tool_config.tool_prompt_format."
    )
    response_format: ResponseFormat | None = None
    stream: bool | None = False
    logprobs: LogProbConfig | None = None
    tool_config: ToolConfig | None = None

    @model_validator(mode="after")
    def _resolve_defaults(self) -> ChatCompletionRequest:
        if self.sampling_params is None:
            self.sampling_params = SamplingParams()
        if self.tool_config is None:
            self.tool_config = ToolConfig(
                tool_choice=self.tool_choice or ToolChoice.auto,
                tool_prompt_format=self.tool_prompt_format,
            )
        else:
            if self.tool_choice is not None and self.tool_choice != self.tool_config.tool_choice:
                raise ValueError("tool_choice and tool_config.tool_choice must match")
            if (
                self.tool_prompt_format is not None
                and self.tool_prompt_format != self.tool_config.tool_prompt_format
            ):
                raise ValueError("tool_prompt_format and tool_config.tool_prompt_format must match")
        choice = self.tool_config.tool_choice
        if choice is not None and not isinstance(choice, ToolChoice):
            names = {str(getattr(t.tool_name, "value", t.tool_name)) for t in self.tools or []}
            if choice not in names:
                raise ValueError(f"tool_config.tool_choice '{choice}' is not one of the tools")
        return self


class ChatCompletionResponse(ApiModel):
    """A whole chat completion."""

    metrics: list[MetricInResponse] | None = None
    completion_message: CompletionMessage
    logprobs: list[TokenLogProbs] | None = None


class ChatCompletionResponseEventType(str, Enum):
    """Where a streamed event sits: the first, one in the middle, or the last."""

    start = "start"
    complete = "complete"
    progress = "progress"


class TextDelta(ApiModel):
    """A piece of text."""

    type: Literal["text"] = "text"
    text: str


class ImageDelta(ApiModel):
    """A piece of an image, base64-encoded."""

    type: Literal["image"] = "image"
    image: str = Field(json_schema_extra={"contentEncoding": "base64"})


class ToolCallParseStatus(str, Enum):
    """How far parsing a streamed tool call has got."""

    started = "started"
    in_progress = "in_progress"
    failed = "failed"
    succeeded = "succeeded"


class ToolCallDelta(ApiModel):
    """A piece of a tool call: raw text while in progress, the parsed call at the end."""

    type: Literal["tool_call"] = "tool_call"
    tool_call: str | ToolCall
    parse_status: ToolCallParseStatus


ContentDelta = Annotated[TextDelta | ImageDelta | ToolCallDelta, Field(discriminator="type")]
"""A piece of streamed content, told apart by `type`."""


class ChatCompletionResponseEvent(ApiModel):
    """One event of a streamed chat completion."""

    event_type: ChatCompletionResponseEventType
    delta: ContentDelta
    logprobs: list[TokenLogProbs] | None = None
    stop_reason: StopReason | None = None


class ChatCompletionResponseStreamChunk(ApiModel):
    """One server-sent event of a streamed chat completion."""

    metrics: list[MetricInResponse] | None = None
    event: ChatCompletionResponseEvent


# ---------------------------------------------------------------------------------------
# Llama Stack completion
# ---------------------------------------------------------------------------------------


class CompletionRequest(ApiModel):
    """The body of `POST /v1/inference/completion`."""

    model_id: str
    content: InterleavedContent
    sampling_params: SamplingParams | None = Field(default_factory=SamplingParams)
    response_format: ResponseFormat | None = None
    stream: bool | None = False
    logprobs: LogProbConfig | None = None

    @model_validator(mode="after")
    def _resolve_defaults(self) -> CompletionRequest:
        if self.sampling_params is None:
            self.sampling_params = SamplingParams()
        return self


class CompletionResponse(ApiModel):
    """A whole completion."""

    metrics: list[MetricInResponse] | None = None
    content: str
    stop_reason: StopReason
    logprobs: list[TokenLogProbs] | None = None


class CompletionResponseStreamChunk(ApiModel):
    """One server-sent event of a streamed completion; the last one has `stop_reason`."""

    metrics: list[MetricInResponse] | None = None
    delta: str
    stop_reason: StopReason | None = None
    logprobs: list[TokenLogProbs] | None = None


# ---------------------------------------------------------------------------------------
# Llama Stack embeddings
# ---------------------------------------------------------------------------------------


class TextTruncation(str, Enum):
    """What to do with text longer than the model takes: refuse it, or cut it at the
    start or the end."""

    none = "none"
    start = "start"
    end = "end"


class EmbeddingTaskType(str, Enum):
    """What the text is, for models that embed queries and documents differently."""

    query = "query"
    document = "document"


class EmbeddingsRequest(ApiModel):
    """The body of `POST /v1/inference/embeddings`."""

    model_id: str
    contents: list[str] | list[InterleavedContentItem]
    text_truncation: TextTruncation | None = TextTruncation.none
    output_dimension: int | None = None
    task_type: EmbeddingTaskType | None = None


class EmbeddingsResponse(ApiModel):
    """One embedding per content, in order."""

    embeddings: list[list[float]]


# ---------------------------------------------------------------------------------------
# Llama Stack batch inference
# ---------------------------------------------------------------------------------------


class BatchChatCompletionRequest(ApiModel):
    """The body of `POST /v1/inference/batch-chat-completion`: one conversation per item."""

    model_id: str
    messages_batch: list[list[Message]]
    sampling_params: SamplingParams | None = Field(default_factory=SamplingParams)
    tools: list[ToolDefinition] | None = None
    tool_config: ToolConfig | None = None
    response_format: ResponseFormat | None = None
    logprobs: LogProbConfig | None = None

    def chat_completion_requests(self) -> list[ChatCompletionRequest]:
        """The batch as one (non-streaming) chat completion request per conversation."""
        return [
            ChatCompletionRequest(
                model_id=self.model_id,
                messages=messages,
                sampling_params=self.sampling_params,
                tools=self.tools,
                tool_config=self.tool_config,
                response_format=self.response_format,
                logprobs=self.logprobs,
            )
            for messages in self.messages_batch
        ]


class BatchChatCompletionResponse(ApiModel):
    """One chat completion per conversation, in order."""

    batch: list[ChatCompletionResponse]


class BatchCompletionRequest(ApiModel):
    """The body of `POST /v1/inference/batch-completion`: one prompt per item."""

    model_id: str
    content_batch: list[InterleavedContent]
    sampling_params: SamplingParams | None = Field(default_factory=SamplingParams)
    response_format: ResponseFormat | None = None
    logprobs: LogProbConfig | None = None

    def completion_requests(self) -> list[CompletionRequest]:
        """The batch as one (non-streaming) completion request per prompt."""
        return [
            CompletionRequest(
                model_id=self.model_id,
                content=content,
                sampling_params=self.sampling_params,
                response_format=self.response_format,
                logprobs=self.logprobs,
            )
            for content in self.content_batch
        ]


class BatchCompletionResponse(ApiModel):
    """One completion per prompt, in order."""

    batch: list[CompletionResponse]


# ---------------------------------------------------------------------------------------
# OpenAI-compatible messages
# ---------------------------------------------------------------------------------------


class OpenAIChatCompletionContentPartTextParam(OpenAIApiModel):
    """A text part of a message."""

    type: Literal["text"] = "text"
    text: str


class OpenAIImageURL(OpenAIApiModel):
    """An image by URL (or data URL), with an optional detail level."""

    url: str
    detail: str | None = None


class OpenAIChatCompletionContentPartImageParam(OpenAIApiModel):
    """An image part of a message."""

    type: Literal["image_url"] = "image_url"
    image_url: OpenAIImageURL


OpenAIChatCompletionContentPartParam = Annotated[
    OpenAIChatCompletionContentPartTextParam | OpenAIChatCompletionContentPartImageParam,
    Field(discriminator="type"),
]
"""A part of a message, told apart by `type`."""

OpenAIMessageContent = str | list[OpenAIChatCompletionContentPartParam]
"""The content of an OpenAI message: text, or a list of parts."""


class OpenAIChatCompletionToolCallFunction(OpenAIApiModel):
    """The function a tool call names, with its arguments as a JSON string."""

    name: str | None = None
    arguments: str | None = None


class OpenAIChatCompletionToolCall(OpenAIApiModel):
    """A tool call; in a streamed delta, `index` says which call a piece belongs to."""

    index: int | None = None
    id: str | None = None
    type: Literal["function"] = "function"
    function: OpenAIChatCompletionToolCallFunction | None = None


class OpenAIUserMessageParam(OpenAIApiModel):
    """A message from the user."""

    role: Literal["user"] = "user"
    content: OpenAIMessageContent
    name: str | None = None


class OpenAISystemMessageParam(OpenAIApiModel):
    """A system prompt."""

    role: Literal["system"] = "system"
    content: OpenAIMessageContent
    name: str | None = None


class OpenAIAssistantMessageParam(OpenAIApiModel):
    """A message from the model; `content` may be absent (or null) when it calls tools."""

    role: Literal["assistant"] = "assistant"
    content: OpenAIMessageContent | None = None
    name: str | None = None
    tool_calls: list[OpenAIChatCompletionToolCall] | None = None


class OpenAIToolMessageParam(OpenAIApiModel):
    """The result of a tool call."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: OpenAIMessageContent


class OpenAIDeveloperMessageParam(OpenAIApiModel):
    """Instructions from the developer (the newer name for a system prompt)."""

    role: Literal["developer"] = "developer"
    content: OpenAIMessageContent
    name: str | None = None


OpenAIMessageParam = Annotated[
    OpenAIUserMessageParam
    | OpenAISystemMessageParam
    | OpenAIAssistantMessageParam
    | OpenAIToolMessageParam
    | OpenAIDeveloperMessageParam,
    Field(discriminator="role"),
]
"""An OpenAI chat message, told apart by `role`."""


# ---------------------------------------------------------------------------------------
# OpenAI-compatible response formats
# ---------------------------------------------------------------------------------------


class OpenAIJSONSchema(OpenAIApiModel):
    """A named JSON schema the output must follow. `schema` is `schema_` in Python."""

    # `schema` would shadow a BaseModel attribute; the alias keeps the wire name.
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: str
    description: str | None = None
    strict: bool | None = None
    schema_: dict[str, JsonValue] | None = Field(default=None, alias="schema")


class OpenAIResponseFormatText(OpenAIApiModel):
    """Plain text output."""

    type: Literal["text"] = "text"


class OpenAIResponseFormatJSONSchema(OpenAIApiModel):
    """JSON output following a schema."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: OpenAIJSONSchema


class OpenAIResponseFormatJSONObject(OpenAIApiModel):
    """Any JSON object."""

    type: Literal["json_object"] = "json_object"


OpenAIResponseFormatParam = Annotated[
    OpenAIResponseFormatText | OpenAIResponseFormatJSONSchema | OpenAIResponseFormatJSONObject,
    Field(discriminator="type"),
]
"""An OpenAI response format, told apart by `type`."""


# ---------------------------------------------------------------------------------------
# OpenAI-compatible chat completion
# ---------------------------------------------------------------------------------------


class OpenAIChatCompletionRequest(OpenAIApiModel):
    """The body of `POST /v1/openai/v1/chat/completions`."""

    model: str
    messages: list[OpenAIMessageParam]
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    function_call: str | dict[str, JsonValue] | None = None
    functions: list[dict[str, JsonValue]] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: OpenAIResponseFormatParam | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: dict[str, JsonValue] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: str | dict[str, JsonValue] | None = None
    tools: list[dict[str, JsonValue]] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, gt=0, le=1)
    user: str | None = None


class OpenAITopLogProb(OpenAIApiModel):
    """One of the most likely tokens at a position."""

    token: str
    bytes: list[int] | None = None
    logprob: float


class OpenAITokenLogProb(OpenAIApiModel):
    """The log probability of a chosen token, with the most likely alternatives."""

    token: str
    bytes: list[int] | None = None
    logprob: float
    top_logprobs: list[OpenAITopLogProb]


class OpenAIChoiceLogprobs(OpenAIApiModel):
    """Log probabilities of the tokens of a choice."""

    content: list[OpenAITokenLogProb] | None = None
    refusal: list[OpenAITokenLogProb] | None = None


class OpenAIChoice(OpenAIApiModel):
    """One choice of a chat completion."""

    message: OpenAIMessageParam
    finish_reason: str
    index: int
    logprobs: OpenAIChoiceLogprobs | None = None


class OpenAIChatCompletionUsage(OpenAIApiModel):
    """Token counts of a completion.

    Not in the contract; OpenAI clients read it, and the last chunk of a stream carries
    it when `stream_options.include_usage` is set.
    """

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class OpenAIChatCompletion(OpenAIApiModel):
    """A whole chat completion. `usage` is an addition to the contract."""

    id: str
    choices: list[OpenAIChoice]
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    usage: OpenAIChatCompletionUsage | None = None


class OpenAIChoiceDelta(OpenAIApiModel):
    """A piece of a streamed choice."""

    content: str | None = None
    refusal: str | None = None
    role: str | None = None
    tool_calls: list[OpenAIChatCompletionToolCall] | None = None


class OpenAIChunkChoice(OpenAIApiModel):
    """A choice of a streamed chunk.

    `finish_reason` is null until the last chunk of the choice, as OpenAI sends it (the
    contract types it as a plain string); it is emitted as null, never dropped.
    """

    delta: OpenAIChoiceDelta
    finish_reason: str | None
    index: int
    logprobs: OpenAIChoiceLogprobs | None = None


class OpenAIChatCompletionChunk(OpenAIApiModel):
    """One server-sent event of a streamed chat completion. `usage` is an addition to
    the contract."""

    id: str
    choices: list[OpenAIChunkChoice]
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    usage: OpenAIChatCompletionUsage | None = None


class OpenAICompletionWithInputMessages(OpenAIChatCompletion):
    """A stored chat completion with the messages it answered."""

    input_messages: list[OpenAIMessageParam]


class ListOpenAIChatCompletionResponse(OpenAIApiModel):
    """A page of stored chat completions."""

    data: list[OpenAICompletionWithInputMessages]
    has_more: bool
    first_id: str
    last_id: str
    object: Literal["list"] = "list"


def openai_finish_reason(stop_reason: StopReason) -> str:
    """The OpenAI `finish_reason` for a Llama Stack stop reason."""
    return _FINISH_REASONS[stop_reason]


_FINISH_REASONS = {
    StopReason.end_of_turn: "stop",
    StopReason.end_of_message: "tool_calls",
    StopReason.out_of_tokens: "length",
}


# ---------------------------------------------------------------------------------------
# OpenAI-compatible completion
# ---------------------------------------------------------------------------------------


class OpenAICompletionRequest(OpenAIApiModel):
    """The body of `POST /v1/openai/v1/completions`.

    `logprobs` is a boolean in the contract and a count (0-5) in the OpenAI API; both
    are accepted.
    """

    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    best_of: int | None = Field(default=None, ge=1)
    echo: bool | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    logprobs: bool | int | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: dict[str, JsonValue] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    user: str | None = None
    guided_choice: list[str] | None = None
    prompt_logprobs: int | None = None
    suffix: str | None = None


class OpenAICompletionChoice(OpenAIApiModel):
    """One choice of a completion. `finish_reason` is null on the chunks of a stream
    before the last, as OpenAI sends it."""

    finish_reason: str | None
    text: str
    index: int
    logprobs: OpenAIChoiceLogprobs | None = None


class OpenAICompletion(OpenAIApiModel):
    """A completion, or one chunk of a streamed completion. `usage` is an addition to
    the contract."""

    id: str
    choices: list[OpenAICompletionChoice]
    created: int
    model: str
    object: Literal["text_completion"] = "text_completion"
    usage: OpenAIChatCompletionUsage | None = None


# ---------------------------------------------------------------------------------------
# OpenAI-compatible embeddings
# ---------------------------------------------------------------------------------------


class OpenAIEmbeddingsRequest(OpenAIApiModel):
    """The body of `POST /v1/openai/v1/embeddings`.

    The OpenAI SDK asks for `base64` unless told otherwise, and decodes it itself.
    """

    model: str
    input: str | list[str]
    encoding_format: str | None = "float"
    dimensions: int | None = None
    user: str | None = None


class OpenAIEmbeddingData(OpenAIApiModel):
    """One embedding: floats, or base64 of little-endian float32 values."""

    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class OpenAIEmbeddingUsage(OpenAIApiModel):
    """Token counts of an embeddings request."""

    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingsResponse(OpenAIApiModel):
    """One embedding per input, in order."""

    object: Literal["list"] = "list"
    data: list[OpenAIEmbeddingData]
    model: str
    usage: OpenAIEmbeddingUsage


# ---------------------------------------------------------------------------------------
# The provider protocol
# ---------------------------------------------------------------------------------------


@runtime_checkable
class Inference(Protocol):
    """What an inference provider implements.

    Streaming has its own methods, named with a ``_stream`` suffix, which are async
    generators; the others return the whole response. (Across Serve deployments a method
    either streams or not, so one method cannot do both.) The router resolves `model_id`
    / `model` to the provider's own model id before calling, and serves batch requests
    as concurrent single calls.
    """

    async def register_model(self, model: Model) -> Model:
        """Check that the provider can serve `model` (and load it); may fill in metadata."""
        ...

    async def unregister_model(self, provider_model_id: str) -> None:
        """Release what the provider holds for the model."""
        ...

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse: ...

    def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]: ...

    async def completion(self, request: CompletionRequest) -> CompletionResponse: ...

    def completion_stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]: ...

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse: ...

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion: ...

    def openai_chat_completion_stream(
        self, request: OpenAIChatCompletionRequest
    ) -> AsyncIterator[OpenAIChatCompletionChunk]: ...

    async def openai_completion(self, request: OpenAICompletionRequest) -> OpenAICompletion: ...

    def openai_completion_stream(
        self, request: OpenAICompletionRequest
    ) -> AsyncIterator[OpenAICompletion]: ...

    async def openai_embeddings(
        self, request: OpenAIEmbeddingsRequest
    ) -> OpenAIEmbeddingsResponse: ...


@runtime_checkable
class InferenceApi(Inference, Protocol):
    """The Inference API as another API calls it (through an `ApiClient`: every method
    awaited): the provider protocol's calls, by registered model id, and the models
    registry."""

    async def get_model(self, model_id: str) -> Model: ...

    async def list_models(self) -> ListModelsResponse: ...


ROUTES = (
    Route(
        "POST",
        "/v1/inference/chat-completion",
        Api.inference,
        "chat_completion",
        body=ChatCompletionRequest,
        stream="chat_completion_stream",
        returns=ChatCompletionResponse,
    ),
    Route(
        "POST",
        "/v1/inference/completion",
        Api.inference,
        "completion",
        body=CompletionRequest,
        stream="completion_stream",
        returns=CompletionResponse,
    ),
    Route(
        "POST",
        "/v1/inference/embeddings",
        Api.inference,
        "embeddings",
        body=EmbeddingsRequest,
        returns=EmbeddingsResponse,
    ),
    Route(
        "POST",
        "/v1/inference/batch-chat-completion",
        Api.inference,
        "batch_chat_completion",
        body=BatchChatCompletionRequest,
        returns=BatchChatCompletionResponse,
    ),
    Route(
        "POST",
        "/v1/inference/batch-completion",
        Api.inference,
        "batch_completion",
        body=BatchCompletionRequest,
        returns=BatchCompletionResponse,
    ),
    # OpenAI-compatible (under /v1/openai/v1 and /v1)
    Route(
        "POST",
        "/chat/completions",
        Api.inference,
        "openai_chat_completion",
        body=OpenAIChatCompletionRequest,
        stream="openai_chat_completion_stream",
        openai=True,
        returns=OpenAIChatCompletion,
    ),
    Route(
        "GET",
        "/chat/completions",
        Api.inference,
        "list_chat_completions",
        query=(
            Param("after"),
            Param("limit", int | None, 20),
            Param("model"),
            Param("order", str, "desc"),
        ),
        openai=True,
        returns=ListOpenAIChatCompletionResponse,
    ),
    Route(
        "GET",
        "/chat/completions/{completion_id}",
        Api.inference,
        "get_chat_completion",
        openai=True,
        returns=OpenAICompletionWithInputMessages,
    ),
    Route(
        "POST",
        "/completions",
        Api.inference,
        "openai_completion",
        body=OpenAICompletionRequest,
        stream="openai_completion_stream",
        openai=True,
        returns=OpenAICompletion,
    ),
    Route(
        "POST",
        "/embeddings",
        Api.inference,
        "openai_embeddings",
        body=OpenAIEmbeddingsRequest,
        openai=True,
        returns=OpenAIEmbeddingsResponse,
    ),
)
