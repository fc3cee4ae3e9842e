"""The OpenAI Responses API (`/v1/openai/v1/responses`, also under `/v1/responses`).

Models follow the contract's `OpenAIResponse*` schemas field for field. Like the other
OpenAI-compatible models the items keep unknown fields (`OpenAIApiModel`): OpenAI SDKs
newer than the contract send more than it lists. The request itself refuses them (see
`CreateOpenaiResponseRequest`). An input message may omit `type` (the SDKs
allow ``{"role": "user", "content": "hi"}``); it is read as a message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from stackray.api.common import ApiModel, JsonValue, OpenAIApiModel
from stackray.api.datatypes import Api
from stackray.api.routes import Param, Route

# ---- content ----------------------------------------------------------------------------


class OpenAIResponseInputMessageContentText(OpenAIApiModel):
    text: str
    type: Literal["input_text"] = "input_text"


class OpenAIResponseInputMessageContentImage(OpenAIApiModel):
    detail: Literal["low", "high", "auto"] = "auto"
    type: Literal["input_image"] = "input_image"
    image_url: str | None = None


OpenAIResponseInputMessageContent = Annotated[
    OpenAIResponseInputMessageContentText | OpenAIResponseInputMessageContentImage,
    Field(discriminator="type"),
]


class OpenAIResponseOutputMessageContentOutputText(OpenAIApiModel):
    text: str
    type: Literal["output_text"] = "output_text"


# ---- items ------------------------------------------------------------------------------


class OpenAIResponseMessage(OpenAIApiModel):
    """A message of any role (input or output)."""

    content: (
        str
        | list[OpenAIResponseInputMessageContent]
        | list[OpenAIResponseOutputMessageContentOutputText]
    )
    role: Literal["system", "developer", "user", "assistant"]
    type: Literal["message"] = "message"
    id: str | None = None
    status: str | None = None


class OpenAIResponseOutputMessageWebSearchToolCall(OpenAIApiModel):
    id: str
    status: str
    type: Literal["web_search_call"] = "web_search_call"


class OpenAIResponseOutputMessageFileSearchToolCall(OpenAIApiModel):
    id: str
    queries: list[str]
    status: str
    type: Literal["file_search_call"] = "file_search_call"
    results: list[dict[str, JsonValue]] | None = None


class OpenAIResponseOutputMessageFunctionToolCall(OpenAIApiModel):
    call_id: str
    name: str
    arguments: str
    type: Literal["function_call"] = "function_call"
    id: str | None = None
    status: str | None = None


class OpenAIResponseInputFunctionToolCallOutput(OpenAIApiModel):
    """The client's result of a function call, sent back as input."""

    call_id: str
    output: str
    type: Literal["function_call_output"] = "function_call_output"
    id: str | None = None
    status: str | None = None


OpenAIResponseInput = Annotated[
    OpenAIResponseOutputMessageWebSearchToolCall
    | OpenAIResponseOutputMessageFileSearchToolCall
    | OpenAIResponseOutputMessageFunctionToolCall
    | OpenAIResponseInputFunctionToolCallOutput
    | OpenAIResponseMessage,
    Field(discriminator="type"),
]

OpenAIResponseOutput = Annotated[
    OpenAIResponseMessage
    | OpenAIResponseOutputMessageWebSearchToolCall
    | OpenAIResponseOutputMessageFileSearchToolCall
    | OpenAIResponseOutputMessageFunctionToolCall,
    Field(discriminator="type"),
]


def _default_message_type(items: Any) -> Any:
    if isinstance(items, list):
        return [
            {**i, "type": "message"}
            if isinstance(i, dict) and "type" not in i and "role" in i
            else i
            for i in items
        ]
    return items


# ---- tools ------------------------------------------------------------------------------


class OpenAIResponseInputToolWebSearch(OpenAIApiModel):
    type: Literal["web_search", "web_search_preview_2025_03_11"] = "web_search"
    search_context_size: str | None = "medium"


class SearchRankingOptions(OpenAIApiModel):
    ranker: str | None = None
    score_threshold: float | None = 0.0


class OpenAIResponseInputToolFileSearch(OpenAIApiModel):
    type: Literal["file_search"] = "file_search"
    vector_store_ids: list[str]
    filters: dict[str, JsonValue] | None = None
    max_num_results: int | None = 10
    ranking_options: SearchRankingOptions | None = None


class OpenAIResponseInputToolFunction(OpenAIApiModel):
    type: Literal["function"] = "function"
    name: str
    description: str | None = None
    parameters: dict[str, JsonValue] | None = None
    strict: bool | None = None


class OpenAIResponseInputToolMCP(OpenAIApiModel):
    type: Literal["mcp"] = "mcp"
    server_label: str
    server_url: str
    headers: dict[str, JsonValue] | None = None
    require_approval: Literal["always", "never"] | dict[str, JsonValue] = "never"
    allowed_tools: list[str] | dict[str, JsonValue] | None = None


OpenAIResponseInputTool = Annotated[
    OpenAIResponseInputToolWebSearch
    | OpenAIResponseInputToolFileSearch
    | OpenAIResponseInputToolFunction
    | OpenAIResponseInputToolMCP,
    Field(discriminator="type"),
]


# ---- requests and responses -------------------------------------------------------------


class OpenAIResponseTextFormat(OpenAIApiModel):
    # `schema` would shadow a BaseModel attribute: the field is `schema_`, "schema" on the wire.
    model_config = ConfigDict(
        extra="allow", protected_namespaces=(), validate_by_name=True, serialize_by_alias=True
    )

    type: Literal["text", "json_schema", "json_object"]
    name: str | None = None
    schema_: dict[str, JsonValue] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class OpenAIResponseText(OpenAIApiModel):
    format: OpenAIResponseTextFormat | None = None


class CreateOpenaiResponseRequest(ApiModel):
    """The body of `POST /v1/openai/v1/responses`.

    Unknown fields are refused (the contract's `additionalProperties: false`), as on the
    native routes: a field of OpenAI's API that this stack does not act on (`tool_choice`,
    `truncation`, `reasoning` ...) is a 400 naming it, never silently ignored. Beyond the
    contract, OpenAI's `max_output_tokens` and `top_p` are honoured.
    """

    input: str | list[OpenAIResponseInput]
    model: str
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = True
    stream: bool | None = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_output_tokens: int | None = Field(
        default=None, ge=1, description="Tokens the response may generate, over all its steps."
    )
    text: OpenAIResponseText | None = None
    tools: list[OpenAIResponseInputTool] | None = None
    max_infer_iters: int | None = Field(default=10, ge=1)
    include: list[Literal["file_search_call.results"]] | None = Field(
        default=None,
        description="OpenAI's extra output: file search results, which this stack always "
        "returns with each file_search call.",
    )

    @model_validator(mode="before")
    @classmethod
    def _message_items(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("input"), list):
            data = {**data, "input": _default_message_type(data["input"])}
        return data


class OpenAIResponseError(OpenAIApiModel):
    code: str
    message: str


class OpenAIResponseInputTokensDetails(OpenAIApiModel):
    cached_tokens: int = 0


class OpenAIResponseOutputTokensDetails(OpenAIApiModel):
    reasoning_tokens: int = 0


class OpenAIResponseUsage(OpenAIApiModel):
    """Tokens of a response, summed over its model calls (OpenAI's `usage`)."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: OpenAIResponseInputTokensDetails = Field(
        default_factory=OpenAIResponseInputTokensDetails
    )
    output_tokens_details: OpenAIResponseOutputTokensDetails = Field(
        default_factory=OpenAIResponseOutputTokensDetails
    )


class OpenAIResponseIncompleteDetails(OpenAIApiModel):
    reason: Literal["max_output_tokens", "content_filter"]


class OpenAIResponseObject(OpenAIApiModel):
    """A response. `usage`, `max_output_tokens` and `incomplete_details` (with `status:
    incomplete` when the output was cut at `max_output_tokens`) are OpenAI's, beyond the
    contract."""

    created_at: int
    error: OpenAIResponseError | None = None
    incomplete_details: OpenAIResponseIncompleteDetails | None = None
    max_output_tokens: int | None = None
    id: str
    model: str
    object: Literal["response"] = "response"
    output: list[OpenAIResponseOutput]
    parallel_tool_calls: bool = False
    previous_response_id: str | None = None
    status: str
    temperature: float | None = None
    text: OpenAIResponseText = Field(
        default_factory=lambda: OpenAIResponseText(format=OpenAIResponseTextFormat(type="text"))
    )
    top_p: float | None = None
    truncation: str | None = None
    usage: OpenAIResponseUsage | None = None
    user: str | None = None


class OpenAIResponseObjectWithInput(OpenAIResponseObject):
    input: list[OpenAIResponseInput]


class ListOpenAIResponseObject(OpenAIApiModel):
    data: list[OpenAIResponseObjectWithInput]
    has_more: bool
    first_id: str
    last_id: str
    object: Literal["list"] = "list"


class ListOpenAIResponseInputItem(OpenAIApiModel):
    data: list[OpenAIResponseInput]
    object: Literal["list"] = "list"


# ---- streamed events --------------------------------------------------------------------


class OpenAIResponseObjectStreamResponseCreated(OpenAIApiModel):
    response: OpenAIResponseObject
    type: Literal["response.created"] = "response.created"


class OpenAIResponseObjectStreamResponseCompleted(OpenAIApiModel):
    response: OpenAIResponseObject
    type: Literal["response.completed"] = "response.completed"


class OpenAIResponseObjectStreamResponseOutputItemAdded(OpenAIApiModel):
    response_id: str
    item: OpenAIResponseOutput
    output_index: int
    sequence_number: int
    type: Literal["response.output_item.added"] = "response.output_item.added"


class OpenAIResponseObjectStreamResponseOutputItemDone(OpenAIApiModel):
    response_id: str
    item: OpenAIResponseOutput
    output_index: int
    sequence_number: int
    type: Literal["response.output_item.done"] = "response.output_item.done"


class OpenAIResponseObjectStreamResponseOutputTextDelta(OpenAIApiModel):
    content_index: int
    delta: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.output_text.delta"] = "response.output_text.delta"


class OpenAIResponseObjectStreamResponseOutputTextDone(OpenAIApiModel):
    content_index: int
    text: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.output_text.done"] = "response.output_text.done"


class OpenAIResponseObjectStreamResponseFunctionCallArgumentsDelta(OpenAIApiModel):
    delta: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.function_call_arguments.delta"] = (
        "response.function_call_arguments.delta"
    )


class OpenAIResponseObjectStreamResponseFunctionCallArgumentsDone(OpenAIApiModel):
    arguments: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"


OpenAIResponseObjectStream = Annotated[
    OpenAIResponseObjectStreamResponseCreated
    | OpenAIResponseObjectStreamResponseOutputItemAdded
    | OpenAIResponseObjectStreamResponseOutputItemDone
    | OpenAIResponseObjectStreamResponseOutputTextDelta
    | OpenAIResponseObjectStreamResponseOutputTextDone
    | OpenAIResponseObjectStreamResponseFunctionCallArgumentsDelta
    | OpenAIResponseObjectStreamResponseFunctionCallArgumentsDone
    | OpenAIResponseObjectStreamResponseCompleted,
    Field(discriminator="type"),
]

ROUTES = (
    Route(
        "POST",
        "/responses",
        Api.agents,
        "create_openai_response",
        body=CreateOpenaiResponseRequest,
        stream="create_openai_response_stream",
        openai=True,
        returns=OpenAIResponseObject,
    ),
    Route(
        "GET",
        "/responses",
        Api.agents,
        "list_openai_responses",
        query=(
            Param("after"),
            Param("limit", int | None, 50),
            Param("model"),
            Param("order", str, "desc"),
        ),
        openai=True,
        returns=ListOpenAIResponseObject,
    ),
    Route(
        "GET",
        "/responses/{response_id}",
        Api.agents,
        "get_openai_response",
        openai=True,
        returns=OpenAIResponseObject,
    ),
    Route(
        "GET",
        "/responses/{response_id}/input_items",
        Api.agents,
        "list_openai_response_input_items",
        query=(
            Param("after"),
            Param("before"),
            Param("include", list[str] | None),
            Param("limit", int | None, 20),
            Param("order", str, "desc"),
        ),
        openai=True,
        returns=ListOpenAIResponseInputItem,
    ),
)
