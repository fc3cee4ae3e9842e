"""The Agents API: agents, their sessions, turns and the steps of a turn.

Every class follows the schema of the same name in the Llama Stack 0.2.12 contract, field
for field. An agent is a stored `AgentConfig` (model, instructions, shields, tools); a
session holds a conversation with one agent; a turn is one user request and everything
the agent did to answer it (inference, tool execution, shield calls, memory retrieval),
streamed as `AgentTurnResponseStreamChunk`s or returned whole.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from stackray.api.common import (
    URL,
    ApiModel,
    CompletionMessage,
    InterleavedContent,
    InterleavedContentItem,
    JsonValue,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolConfig,
    ToolName,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
)
from stackray.api.datatypes import Api
from stackray.api.inference import ContentDelta
from stackray.api.routes import Param, Route
from stackray.api.safety import SafetyViolation
from stackray.api.tools import ToolDef

# ---------------------------------------------------------------------------------------
# Agent configuration
# ---------------------------------------------------------------------------------------


class AgentToolGroupWithArgs(ApiModel):
    """A tool group (``builtin::rag``) or one tool of it (``builtin::rag/knowledge_search``),
    with arguments added to every call of its tools (e.g. ``vector_db_ids``)."""

    name: str
    args: dict[str, JsonValue]


AgentTool = Annotated[str | AgentToolGroupWithArgs, Field(union_mode="left_to_right")]
"""A tool group (or one of its tools) by name, or with arguments."""


class ClientToolDef(ToolDef):
    """A tool the client runs itself (`AgentConfig.client_tools`): the contract's ToolDef.

    `llama_stack_client` 0.2.12 also sends `tool_prompt_format` with each client tool; it
    is accepted (and otherwise unused) so that the client's `Agent` helper works unchanged.
    """

    tool_prompt_format: ToolPromptFormat | None = None


class AgentConfig(ApiModel):
    """Configuration for an agent.

    The deprecated top-level `tool_choice` / `tool_prompt_format` are folded into
    `tool_config` when it is not given.
    """

    sampling_params: SamplingParams | None = None
    input_shields: list[str] | None = None
    output_shields: list[str] | None = None
    toolgroups: list[AgentTool] | None = None
    client_tools: list[ClientToolDef] | None = None
    tool_choice: ToolChoice | None = Field(
        default=None, description="Deprecated: use tool_config.tool_choice."
    )
    tool_prompt_format: ToolPromptFormat | None = Field(
        default=None, description="Deprecated: use tool_config.tool_prompt_format."
    )
    tool_config: ToolConfig | None = None
    max_infer_iters: int | None = 10
    model: str = Field(description="The model identifier to use for the agent")
    instructions: str = Field(description="The system instructions for the agent")
    name: str | None = Field(
        default=None,
        description="Optional name for the agent, used in telemetry and identification",
    )
    enable_session_persistence: bool | None = Field(
        default=False,
        description="Optional flag indicating whether session data has to be persisted",
    )
    response_format: ResponseFormat | None = Field(
        default=None, description="Optional response format configuration"
    )

    @model_validator(mode="after")
    def _fold_tool_config(self) -> AgentConfig:
        if self.tool_config is None and (self.tool_choice or self.tool_prompt_format):
            self.tool_config = ToolConfig(
                tool_choice=self.tool_choice or ToolChoice.auto,
                tool_prompt_format=self.tool_prompt_format,
            )
        if self.max_infer_iters is not None and self.max_infer_iters < 1:
            raise ValueError("max_infer_iters must be at least 1")
        return self


class CreateAgentRequest(ApiModel):
    agent_config: AgentConfig = Field(description="The configuration for the agent.")


class AgentCreateResponse(ApiModel):
    agent_id: str


class Agent(ApiModel):
    agent_id: str
    agent_config: AgentConfig
    created_at: datetime


class CreateAgentSessionRequest(ApiModel):
    session_name: str = Field(description="The name of the session to create.")


class AgentSessionCreateResponse(ApiModel):
    session_id: str


class PaginatedResponse(ApiModel):
    """A generic paginated response that follows a simple format."""

    data: list[dict[str, JsonValue]] = Field(description="The list of items for the current page")
    has_more: bool = Field(description="Whether there are more items available after this set")
    url: str | None = Field(default=None, description="The URL for accessing this list")


# ---------------------------------------------------------------------------------------
# Turns and steps
# ---------------------------------------------------------------------------------------


class StepType(str, Enum):
    """Type of the step in an agent turn."""

    inference = "inference"
    tool_execution = "tool_execution"
    shield_call = "shield_call"
    memory_retrieval = "memory_retrieval"


class ToolResponse(ApiModel):
    """What one tool call returned."""

    call_id: str
    tool_name: ToolName
    content: InterleavedContent
    metadata: dict[str, JsonValue] | None = None


class _StepBase(ApiModel):
    turn_id: str = Field(description="The ID of the turn.")
    step_id: str = Field(description="The ID of the step.")
    started_at: datetime | None = Field(default=None, description="The time the step started.")
    completed_at: datetime | None = Field(default=None, description="The time the step completed.")


class InferenceStep(_StepBase):
    """An inference step in an agent turn."""

    step_type: Literal["inference"] = "inference"
    model_response: CompletionMessage = Field(description="The response from the LLM.")


class ToolExecutionStep(_StepBase):
    """A tool execution step in an agent turn."""

    step_type: Literal["tool_execution"] = "tool_execution"
    tool_calls: list[ToolCall] = Field(description="The tool calls to execute.")
    tool_responses: list[ToolResponse] = Field(
        description="The tool responses from the tool calls."
    )


class ShieldCallStep(_StepBase):
    """A shield call step in an agent turn."""

    step_type: Literal["shield_call"] = "shield_call"
    violation: SafetyViolation | None = Field(
        default=None, description="The violation from the shield call."
    )


class MemoryRetrievalStep(_StepBase):
    """A memory retrieval step in an agent turn."""

    step_type: Literal["memory_retrieval"] = "memory_retrieval"
    vector_db_ids: str = Field(
        description="The IDs of the vector databases to retrieve context from."
    )
    inserted_context: InterleavedContent = Field(
        description="The context retrieved from the vector databases."
    )


Step = Annotated[
    InferenceStep | ToolExecutionStep | ShieldCallStep | MemoryRetrievalStep,
    Field(discriminator="step_type"),
]
"""A step of a turn, told apart by `step_type`."""


class Attachment(ApiModel):
    """An attachment to an agent turn."""

    content: InterleavedContent | URL = Field(description="The content of the attachment.")
    mime_type: str = Field(description="The MIME type of the attachment.")


class Document(ApiModel):
    """A document to be used by an agent."""

    content: str | InterleavedContentItem | list[InterleavedContentItem] | URL = Field(
        description="The content of the document.", union_mode="left_to_right"
    )
    mime_type: str = Field(description="The MIME type of the document.")


TurnInputMessage = Annotated[UserMessage | ToolResponseMessage, Field(discriminator="role")]


class Turn(ApiModel):
    """A single turn in an interaction with an Agentic System."""

    turn_id: str
    session_id: str
    input_messages: list[TurnInputMessage]
    steps: list[Step]
    output_message: CompletionMessage
    output_attachments: list[Attachment] | None = None
    started_at: datetime
    completed_at: datetime | None = None


class Session(ApiModel):
    """A single session of an interaction with an Agentic System."""

    session_id: str
    session_name: str
    turns: list[Turn]
    started_at: datetime


class CreateAgentTurnRequest(ApiModel):
    messages: list[TurnInputMessage] = Field(description="List of messages to start the turn with.")
    stream: bool | None = Field(
        default=False, description="If True, generate an SSE event stream of the response."
    )
    documents: list[Document] | None = Field(
        default=None, description="List of documents to create the turn with."
    )
    toolgroups: list[AgentTool] | None = Field(
        default=None,
        description="Toolgroups used in addition to the agent's config toolgroups for this turn.",
    )
    tool_config: ToolConfig | None = Field(
        default=None, description="Overrides the agent's tool_config for this turn."
    )


class ResumeAgentTurnRequest(ApiModel):
    tool_responses: list[ToolResponse] = Field(
        description="The tool call responses to resume the turn with."
    )
    stream: bool | None = Field(default=False, description="Whether to stream the response.")


class AgentStepResponse(ApiModel):
    step: Step


# ---------------------------------------------------------------------------------------
# Streamed turn events
# ---------------------------------------------------------------------------------------


class AgentTurnResponseEventType(str, Enum):
    step_start = "step_start"
    step_complete = "step_complete"
    step_progress = "step_progress"
    turn_start = "turn_start"
    turn_complete = "turn_complete"
    turn_awaiting_input = "turn_awaiting_input"


class AgentTurnResponseStepStartPayload(ApiModel):
    event_type: Literal["step_start"] = "step_start"
    step_type: StepType
    step_id: str
    metadata: dict[str, JsonValue] | None = None


class AgentTurnResponseStepProgressPayload(ApiModel):
    event_type: Literal["step_progress"] = "step_progress"
    step_type: StepType
    step_id: str
    delta: ContentDelta


class AgentTurnResponseStepCompletePayload(ApiModel):
    event_type: Literal["step_complete"] = "step_complete"
    step_type: StepType
    step_id: str
    step_details: Step


class AgentTurnResponseTurnStartPayload(ApiModel):
    event_type: Literal["turn_start"] = "turn_start"
    turn_id: str


class AgentTurnResponseTurnCompletePayload(ApiModel):
    event_type: Literal["turn_complete"] = "turn_complete"
    turn: Turn


class AgentTurnResponseTurnAwaitingInputPayload(ApiModel):
    event_type: Literal["turn_awaiting_input"] = "turn_awaiting_input"
    turn: Turn


AgentTurnResponseEventPayload = Annotated[
    AgentTurnResponseStepStartPayload
    | AgentTurnResponseStepProgressPayload
    | AgentTurnResponseStepCompletePayload
    | AgentTurnResponseTurnStartPayload
    | AgentTurnResponseTurnCompletePayload
    | AgentTurnResponseTurnAwaitingInputPayload,
    Field(discriminator="event_type"),
]


class AgentTurnResponseEvent(ApiModel):
    payload: AgentTurnResponseEventPayload


class AgentTurnResponseStreamChunk(ApiModel):
    """streamed agent turn completion response."""

    event: AgentTurnResponseEvent


_PAGE = (Param("start_index", int | None), Param("limit", int | None))
_SESSION = "/v1/agents/{agent_id}/session/{session_id}"
_TURN = _SESSION + "/turn/{turn_id}"

ROUTES = (
    Route(
        "POST",
        "/v1/agents",
        Api.agents,
        "create_agent",
        body=CreateAgentRequest,
        returns=AgentCreateResponse,
    ),
    Route("GET", "/v1/agents", Api.agents, "list_agents", query=_PAGE, returns=PaginatedResponse),
    Route("GET", "/v1/agents/{agent_id}", Api.agents, "get_agent", returns=Agent),
    Route("DELETE", "/v1/agents/{agent_id}", Api.agents, "delete_agent", empty=True),
    Route(
        "POST",
        "/v1/agents/{agent_id}/session",
        Api.agents,
        "create_agent_session",
        body=CreateAgentSessionRequest,
        returns=AgentSessionCreateResponse,
    ),
    Route(
        "GET",
        "/v1/agents/{agent_id}/sessions",
        Api.agents,
        "list_agent_sessions",
        query=_PAGE,
        returns=PaginatedResponse,
    ),
    Route(
        "GET",
        _SESSION,
        Api.agents,
        "get_agents_session",
        query=(Param("turn_ids", list[str] | None),),
        returns=Session,
    ),
    Route("DELETE", _SESSION, Api.agents, "delete_agents_session", empty=True),
    Route(
        "POST",
        _SESSION + "/turn",
        Api.agents,
        "create_agent_turn",
        body=CreateAgentTurnRequest,
        stream="create_agent_turn_stream",
        returns=Turn,
    ),
    Route("GET", _TURN, Api.agents, "get_agents_turn", returns=Turn),
    Route(
        "POST",
        _TURN + "/resume",
        Api.agents,
        "resume_agent_turn",
        body=ResumeAgentTurnRequest,
        stream="resume_agent_turn_stream",
        returns=Turn,
    ),
    Route(
        "GET", _TURN + "/step/{step_id}", Api.agents, "get_agents_step", returns=AgentStepResponse
    ),
)
