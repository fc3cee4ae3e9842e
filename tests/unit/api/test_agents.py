"""The agents API models against the contract: field names, required sets, defaults and
JSON types, as `test_api_models` checks the other APIs' models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from stackray.api import agents, responses
from tests import contract
from tests.unit.api.test_models import _contract_object, _deref, _nullable, _our_schema, json_types

CONTRACT_NAMES: dict[type[BaseModel], str] = {
    agents.AgentToolGroupWithArgs: "AgentTool.oneOf.1",
    agents.ClientToolDef: "ToolDef",
    agents.AgentConfig: "AgentConfig",
    agents.CreateAgentRequest: "CreateAgentRequest",
    agents.AgentCreateResponse: "AgentCreateResponse",
    agents.Agent: "Agent",
    agents.CreateAgentSessionRequest: "CreateAgentSessionRequest",
    agents.AgentSessionCreateResponse: "AgentSessionCreateResponse",
    agents.PaginatedResponse: "PaginatedResponse",
    agents.ToolResponse: "ToolResponse",
    agents.InferenceStep: "InferenceStep",
    agents.ToolExecutionStep: "ToolExecutionStep",
    agents.ShieldCallStep: "ShieldCallStep",
    agents.MemoryRetrievalStep: "MemoryRetrievalStep",
    agents.Attachment: "Turn.output_attachments.items",
    agents.Document: "CreateAgentTurnRequest.documents.items",
    agents.Turn: "Turn",
    agents.Session: "Session",
    agents.CreateAgentTurnRequest: "CreateAgentTurnRequest",
    agents.ResumeAgentTurnRequest: "ResumeAgentTurnRequest",
    agents.AgentStepResponse: "AgentStepResponse",
    agents.AgentTurnResponseStepStartPayload: "AgentTurnResponseStepStartPayload",
    agents.AgentTurnResponseStepProgressPayload: "AgentTurnResponseStepProgressPayload",
    agents.AgentTurnResponseStepCompletePayload: "AgentTurnResponseStepCompletePayload",
    agents.AgentTurnResponseTurnStartPayload: "AgentTurnResponseTurnStartPayload",
    agents.AgentTurnResponseTurnCompletePayload: "AgentTurnResponseTurnCompletePayload",
    agents.AgentTurnResponseTurnAwaitingInputPayload: "AgentTurnResponseTurnAwaitingInputPayload",
    agents.AgentTurnResponseEvent: "AgentTurnResponseEvent",
    agents.AgentTurnResponseStreamChunk: "AgentTurnResponseStreamChunk",
    # the OpenAI Responses API
    **{
        cls: cls.__name__
        for cls in (
            responses.OpenAIResponseInputMessageContentText,
            responses.OpenAIResponseInputMessageContentImage,
            responses.OpenAIResponseMessage,
            responses.OpenAIResponseOutputMessageWebSearchToolCall,
            responses.OpenAIResponseOutputMessageFileSearchToolCall,
            responses.OpenAIResponseOutputMessageFunctionToolCall,
            responses.OpenAIResponseInputFunctionToolCallOutput,
            responses.OpenAIResponseInputToolWebSearch,
            responses.OpenAIResponseInputToolFileSearch,
            responses.OpenAIResponseInputToolFunction,
            responses.OpenAIResponseInputToolMCP,
            responses.OpenAIResponseText,
            responses.OpenAIResponseError,
            responses.OpenAIResponseObject,
            responses.OpenAIResponseObjectWithInput,
            responses.ListOpenAIResponseObject,
            responses.ListOpenAIResponseInputItem,
            responses.OpenAIResponseObjectStreamResponseCreated,
            responses.OpenAIResponseObjectStreamResponseCompleted,
            responses.OpenAIResponseObjectStreamResponseOutputItemAdded,
            responses.OpenAIResponseObjectStreamResponseOutputItemDone,
            responses.OpenAIResponseObjectStreamResponseOutputTextDelta,
            responses.OpenAIResponseObjectStreamResponseOutputTextDone,
            responses.OpenAIResponseObjectStreamResponseFunctionCallArgumentsDelta,
            responses.OpenAIResponseObjectStreamResponseFunctionCallArgumentsDone,
        )
    },
    responses.CreateOpenaiResponseRequest: "CreateOpenaiResponseRequest",
    responses.OpenAIResponseOutputMessageContentOutputText: "OpenAIResponseOutputMessageContent",
    responses.OpenAIResponseTextFormat: "OpenAIResponseText.format",
    responses.SearchRankingOptions: "OpenAIResponseInputToolFileSearch.ranking_options",
}

# Fields we add to a contract schema, and why.
ADDED_FIELDS: dict[type[BaseModel], set[str]] = {
    # llama-stack-client 0.2.12 sends it with every client tool of its `Agent` helper.
    agents.ClientToolDef: {"tool_prompt_format"},
    # OpenAI's Responses fields beyond the contract: honoured in requests, reported back.
    responses.CreateOpenaiResponseRequest: {"max_output_tokens", "top_p", "include"},
    responses.OpenAIResponseObject: {"usage", "incomplete_details", "max_output_tokens"},
    responses.OpenAIResponseObjectWithInput: {"usage", "incomplete_details", "max_output_tokens"},
}


def _spec(path: str) -> dict[str, Any]:
    """A contract object by "Schema.prop.items" / "Schema.oneOf.N" path."""
    name, *rest = path.split(".")
    node: Any = contract.resolve(name)
    i = 0
    while i < len(rest):
        key = rest[i]
        if key == "oneOf":
            node = node["oneOf"][int(rest[i + 1])]
            i += 2
            continue
        node = node["items"] if key == "items" else node["properties"][key]
        i += 1
    return node


@pytest.mark.parametrize("cls", list(CONTRACT_NAMES), ids=lambda c: c.__name__)
def test_fields_follow_contract(cls: type[BaseModel]) -> None:
    theirs = _spec(CONTRACT_NAMES[cls])
    ours = _our_schema(cls)
    defs = ours.get("$defs", {})
    their_props = theirs.get("properties", {})
    our_props = ours.get("properties", {})
    added = ADDED_FIELDS.get(cls, set())
    assert set(our_props) - added == set(their_props), f"{cls.__name__}: field names"
    our_required = set(ours.get("required", [])) | {
        name for name, prop in our_props.items() if not _nullable(prop, defs)
    }
    assert our_required - added == set(theirs.get("required", [])), f"{cls.__name__}: required"
    for name, their_prop in their_props.items():
        our_prop = _deref(our_props[name], defs)
        if "default" in their_prop:
            assert our_props[name].get("default", our_prop.get("default")) == their_prop["default"]
        their_types = json_types(their_prop)
        our_types = json_types(our_props[name], defs)
        if "any" in our_types:
            continue
        if "null" not in their_types and name not in theirs.get("required", []):
            our_types -= {"null"}
        assert our_types == their_types, f"{cls.__name__}.{name}: types"


@pytest.mark.parametrize(
    "alias,name",
    [(agents.AgentTool, "AgentTool"), (agents.Step, "Turn.steps.items")],
    ids=["AgentTool", "Step"],
)
def test_unions_follow_contract(alias: Any, name: str) -> None:
    ours = TypeAdapter(alias).json_schema()
    assert json_types(ours, ours.get("$defs")) == json_types(_spec(name))


def test_event_payload_union_names_the_event_types() -> None:
    ours = TypeAdapter(agents.AgentTurnResponseEventPayload).json_schema()
    theirs = contract.schema("AgentTurnResponseEventPayload")
    assert set(ours["discriminator"]["mapping"]) == set(theirs["discriminator"]["mapping"])
    assert {e.value for e in agents.AgentTurnResponseEventType} == set(
        theirs["discriminator"]["mapping"]
    )
    assert {s.value for s in agents.StepType} == {
        f[1:] for f in json_types(_contract_object("InferenceStep")["properties"]["step_type"])
    } | {"tool_execution", "shield_call", "memory_retrieval"}


def test_agent_config_folds_deprecated_tool_fields() -> None:
    config = agents.AgentConfig(
        model="m", instructions="i", tool_choice="required", tool_prompt_format="json"
    )
    assert config.tool_config is not None
    assert config.tool_config.tool_choice == "required"
    assert config.tool_config.tool_prompt_format == "json"
    with pytest.raises(ValidationError, match="max_infer_iters"):
        agents.AgentConfig(model="m", instructions="i", max_infer_iters=0)


def test_documents_take_text_items_or_urls() -> None:
    doc = agents.Document(content={"uri": "data:text/plain,hi"}, mime_type="text/plain")
    assert doc.content.uri == "data:text/plain,hi"  # type: ignore[union-attr]
    doc = agents.Document(content={"type": "text", "text": "hi"}, mime_type="text/plain")
    assert doc.content.text == "hi"  # type: ignore[union-attr]
    doc = agents.Document(content="plain", mime_type="text/plain")
    assert doc.content == "plain"


def test_stream_chunks_validate_against_the_contract() -> None:
    turn = agents.Turn(
        turn_id="t",
        session_id="s",
        input_messages=[{"role": "user", "content": "hi"}],
        steps=[
            agents.InferenceStep(
                turn_id="t",
                step_id="a",
                model_response={"content": "x", "stop_reason": "end_of_turn"},
            )
        ],
        output_message={"content": "x", "stop_reason": "end_of_turn"},
        started_at="2026-01-01T00:00:00Z",
    )
    chunk = agents.AgentTurnResponseStreamChunk(
        event=agents.AgentTurnResponseEvent(
            payload=agents.AgentTurnResponseTurnCompletePayload(turn=turn)
        )
    )
    contract.validate(
        "AgentTurnResponseStreamChunk", chunk.model_dump(mode="json", exclude_none=True)
    )
