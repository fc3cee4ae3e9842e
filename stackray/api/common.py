"""Types shared by several APIs: model bases, content, messages, tools and sampling.

Every class follows the schema of the same name in the Llama Stack 0.2.12 contract,
field for field. The contract marks a property `required` exactly when its value can
never be null, even where the server fills in a default (the `type` tags, a sampling
strategy); so here a field typed without `None` is always present in what we send,
and a field typed `X | None` is optional on the wire.
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

# Free-form JSON values, as the contract's `oneOf [null, boolean, number, string, array,
# object]`.
JsonValue = Any

# ---------------------------------------------------------------------------------------
# Model bases
# ---------------------------------------------------------------------------------------


def _allows_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _allows_none(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_allows_none(arg) for arg in typing.get_args(annotation))
    return False


ResourceId = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""The id a client gives a resource it registers: never empty, no control characters."""


def _require_tags(schema: dict[str, Any], model: type) -> None:
    """A field that holds one value only (a `Literal` tag such as `role` or `type`) is
    listed as required in the JSON schema even when it has a default: a tagged union
    picks its member by the tag, so a body without it is refused, and the OpenAPI
    description must say so (as the contract does)."""
    required = list(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        if "const" in prop and name not in required:
            required.append(name)
    if required:
        schema["required"] = required


class ApiModel(BaseModel):
    """Base of every Llama Stack API model: unknown fields are rejected.

    A misspelt field in a request is then a validation error that names it, rather than
    a setting silently ignored. Serializing with `exclude_none=True` drops optional
    fields left unset but keeps fields that are required and nullable (such as
    `finish_reason` of a streamed OpenAI choice), which clients expect to find as null.
    """

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=(), json_schema_extra=_require_tags
    )

    # Names of the required fields whose type admits None; computed per class.
    _required_nullable: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._required_nullable = tuple(
            name
            for name, field in cls.model_fields.items()
            if field.is_required() and _allows_none(field.annotation)
        )

    @model_serializer(mode="wrap")
    def _keep_required_nulls(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ):  # no return annotation: keeps the model's own serialization JSON schema
        data = handler(self)
        if not (info.exclude_none and self._required_nullable and isinstance(data, dict)):
            return data
        excluded = info.exclude or ()
        for name in self._required_nullable:
            if name in data or name in excluded or getattr(self, name) is not None:
                continue
            if info.include is not None and name not in info.include:
                continue
            key = name
            if info.by_alias:
                key = type(self).model_fields[name].serialization_alias or name
            data[key] = None
        return data


class OpenAIApiModel(ApiModel):
    """Base of the OpenAI-compatible models: unknown fields are kept, not rejected.

    OpenAI SDKs newer than the contract send fields it does not list (`store`,
    `reasoning_effort`, `refusal` on replayed assistant messages ...); a server that
    rejected them would break those clients.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())


# ---------------------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------------------


class URL(ApiModel):
    """A URL (or data URL) referring to some content."""

    uri: str


def _url_or_data_schema(schema: dict[str, Any], model: type) -> None:
    _require_tags(schema, model)
    # What `_one_source` checks: a URL or data, not null.
    schema["anyOf"] = [
        {"required": ["url"], "properties": {"url": {"type": "object"}}},
        {"required": ["data"], "properties": {"data": {"type": "string"}}},
    ]


class URLOrData(ApiModel):
    """The `image` of an `ImageContentItem`: a URL, or base64-encoded image data."""

    model_config = ConfigDict(json_schema_extra=_url_or_data_schema)

    url: URL | None = None
    data: str | None = Field(
        default=None,
        json_schema_extra={"contentEncoding": "base64"},
        description="base64 encoded image data",
    )

    @model_validator(mode="after")
    def _one_source(self) -> URLOrData:
        if self.url is None and self.data is None:
            raise ValueError("an image needs either 'url' or 'data'")
        return self


class TextContentItem(ApiModel):
    """A text content item."""

    type: Literal["text"] = "text"
    text: str


class ImageContentItem(ApiModel):
    """An image content item."""

    type: Literal["image"] = "image"
    image: URLOrData


InterleavedContentItem = Annotated[ImageContentItem | TextContentItem, Field(discriminator="type")]
"""One item of interleaved content, told apart by `type`."""

InterleavedContent = str | InterleavedContentItem | list[InterleavedContentItem]
"""Text, a single content item, or a list of items."""


def interleaved_content_as_str(content: InterleavedContent, sep: str = " ") -> str:
    """The text of some content; images are written as `<image>`."""
    if isinstance(content, str):
        return content
    items = content if isinstance(content, list) else [content]
    return sep.join(item.text if isinstance(item, TextContentItem) else "<image>" for item in items)


# ---------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------


class BuiltinTool(str, Enum):
    """Tools some Llama models are trained to call by name."""

    brave_search = "brave_search"
    wolfram_alpha = "wolfram_alpha"
    photogen = "photogen"
    code_interpreter = "code_interpreter"


ToolName = Annotated[BuiltinTool | str, Field(union_mode="left_to_right")]
"""A built-in tool, or any other tool by name."""

# Values a tool call argument may take, as the contract has them: a primitive, or a list
# or object of primitives.
Primitive = str | int | float | bool | None
RecursiveType = Primitive | list[Primitive] | dict[str, Primitive]


class ToolCall(ApiModel):
    """A call of a tool made by the model."""

    call_id: str
    tool_name: ToolName
    arguments: str | dict[str, RecursiveType]
    arguments_json: str | None = None


class ToolParamDefinition(ApiModel):
    """One parameter of a tool."""

    param_type: str
    description: str | None = None
    required: bool | None = True
    default: JsonValue = None


class ToolDefinition(ApiModel):
    """A tool the model may call."""

    tool_name: ToolName
    description: str | None = None
    parameters: dict[str, ToolParamDefinition] | None = None


class ToolChoice(str, Enum):
    """Whether tool use is automatic, required or off. A hint the model may not follow."""

    auto = "auto"
    required = "required"
    none = "none"


class ToolPromptFormat(str, Enum):
    """How the model is asked to write tool calls."""

    json = "json"
    function_tag = "function_tag"
    python_list = "python_list"


class SystemMessageBehavior(Enum):
    """Whether a system message is appended to or replaces the default system prompt.

    A plain Enum: as a `str` subclass its `replace` member would hide `str.replace`.
    """

    append = "append"
    replace = "replace"


class ToolConfig(ApiModel):
    """Configuration for tool use.

    `tool_choice` is a `ToolChoice`, or the name of one tool the model must call.
    """

    tool_choice: Annotated[ToolChoice | str, Field(union_mode="left_to_right")] | None = (
        ToolChoice.auto
    )
    tool_prompt_format: ToolPromptFormat | None = None
    system_message_behavior: SystemMessageBehavior | None = SystemMessageBehavior.append


# ---------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------


class StopReason(str, Enum):
    """Why the model stopped: the turn is over, it wrote a message (usually a tool
    call) and expects to continue, or it ran out of tokens."""

    end_of_turn = "end_of_turn"
    end_of_message = "end_of_message"
    out_of_tokens = "out_of_tokens"


class UserMessage(ApiModel):
    """A message from the user. `context` is used by the stack to pass RAG context."""

    role: Literal["user"] = "user"
    content: InterleavedContent
    context: InterleavedContent | None = None


class SystemMessage(ApiModel):
    """A system prompt; several are concatenated."""

    role: Literal["system"] = "system"
    content: InterleavedContent


class ToolResponseMessage(ApiModel):
    """The result of a tool call, sent back to the model."""

    role: Literal["tool"] = "tool"
    call_id: str
    content: InterleavedContent


class CompletionMessage(ApiModel):
    """A message written by the model (the assistant)."""

    role: Literal["assistant"] = "assistant"
    content: InterleavedContent
    stop_reason: StopReason
    tool_calls: list[ToolCall] | None = Field(default_factory=list)


Message = Annotated[
    UserMessage | SystemMessage | ToolResponseMessage | CompletionMessage,
    Field(discriminator="role"),
]
"""A message of a conversation, told apart by `role`."""


# ---------------------------------------------------------------------------------------
# Sampling and response format
# ---------------------------------------------------------------------------------------


class GreedySamplingStrategy(ApiModel):
    """Always pick the most likely token."""

    type: Literal["greedy"] = "greedy"


class TopPSamplingStrategy(ApiModel):
    """Nucleus sampling. A `temperature` of 0 is greedy."""

    type: Literal["top_p"] = "top_p"
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=0.95, gt=0, le=1)


class TopKSamplingStrategy(ApiModel):
    """Sample among the `top_k` most likely tokens."""

    type: Literal["top_k"] = "top_k"
    top_k: int = Field(ge=1)


SamplingStrategy = Annotated[
    GreedySamplingStrategy | TopPSamplingStrategy | TopKSamplingStrategy,
    Field(discriminator="type"),
]
"""A sampling strategy, told apart by `type`."""


class SamplingParams(ApiModel):
    """Sampling parameters. `max_tokens` 0 means as many as the context allows."""

    strategy: SamplingStrategy = Field(default_factory=GreedySamplingStrategy)
    max_tokens: int | None = Field(default=0, ge=0)
    repetition_penalty: float | None = Field(default=1.0, gt=0)
    stop: list[str] | None = None


class ResponseFormatType(str, Enum):
    """The kinds of constraint on the model's output."""

    json_schema = "json_schema"
    grammar = "grammar"


class JsonSchemaResponseFormat(ApiModel):
    """Constrain the output to JSON that follows a JSON schema."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: dict[str, JsonValue]


class GrammarResponseFormat(ApiModel):
    """Constrain the output to a BNF grammar."""

    type: Literal["grammar"] = "grammar"
    bnf: dict[str, JsonValue]


ResponseFormat = Annotated[
    JsonSchemaResponseFormat | GrammarResponseFormat, Field(discriminator="type")
]
"""A constraint on the model's output, told apart by `type`."""


class LogProbConfig(ApiModel):
    """Ask for the log probabilities of the `top_k` most likely tokens at each step."""

    top_k: int | None = Field(default=0, ge=0)


class TokenLogProbs(ApiModel):
    """Log probabilities of the most likely tokens at one step."""

    logprobs_by_token: dict[str, float]


class MetricInResponse(ApiModel):
    """A metric attached to a response (token counts ...)."""

    metric: str
    value: int | float
    unit: str | None = None
