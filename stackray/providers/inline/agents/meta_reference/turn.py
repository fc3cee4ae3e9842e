"""One agent turn: input shields -> inference -> tool execution -> inference ... -> output
shields, every step recorded with its timing and streamed as events.

`TurnRunner.run` is an async generator of `AgentTurnResponseStreamChunk`s; it ends with
`turn_complete`, or with `turn_awaiting_input` when the model called a client tool (the
turn is then stored with what `resume` needs).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from stackray.api.agents import (
    AgentConfig,
    AgentTurnResponseEvent,
    AgentTurnResponseEventPayload,
    AgentTurnResponseStepCompletePayload,
    AgentTurnResponseStepProgressPayload,
    AgentTurnResponseStepStartPayload,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnAwaitingInputPayload,
    AgentTurnResponseTurnCompletePayload,
    AgentTurnResponseTurnStartPayload,
    InferenceStep,
    MemoryRetrievalStep,
    ShieldCallStep,
    Step,
    StepType,
    ToolExecutionStep,
    ToolResponse,
    Turn,
)
from stackray.api.common import (
    CompletionMessage,
    Message,
    StopReason,
    ToolCall,
    ToolChoice,
    ToolConfig,
    ToolDefinition,
    ToolResponseMessage,
    UserMessage,
)
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    ChatCompletionRequest,
    ChatCompletionResponseEventType,
    TextDelta,
    ToolCallDelta,
    ToolCallParseStatus,
)
from stackray.api.safety import RunShieldRequest, SafetyViolation, ViolationLevel
from stackray.api.tools import InvokeToolRequest
from stackray.api.vector_io import QueryChunksRequest
from stackray.providers.inline.agents.meta_reference.apis import AgentApis
from stackray.providers.inline.agents.meta_reference.context import content_text
from stackray.providers.inline.agents.meta_reference.persistence import AgentStore, PendingTurn
from stackray.runtime.errors import to_stack_error

RAG_TOOL = "knowledge_search"

SHIELD_REFUSAL = "I can't answer that."
"""The answer of a turn stopped by a shield that gave no message of its own."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


def chunk(payload: AgentTurnResponseEventPayload) -> AgentTurnResponseStreamChunk:
    return AgentTurnResponseStreamChunk(event=AgentTurnResponseEvent(payload=payload))


@dataclass
class TurnTools:
    """The tools of one turn: what the model is offered and who runs each tool."""

    definitions: list[ToolDefinition] = field(default_factory=list)
    client: set[str] = field(default_factory=set)
    server_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Server tool name -> arguments its tool group adds to every call."""

    @property
    def names(self) -> set[str]:
        return {str(getattr(t.tool_name, "value", t.tool_name)) for t in self.definitions}


@dataclass
class TurnState:
    """Everything a running turn carries from step to step."""

    agent_id: str
    config: AgentConfig
    turn: Turn
    messages: list[Message]
    tools: TurnTools
    tool_config: ToolConfig
    toolgroups: list[Any] | None
    inference_steps: int = 0


class TurnRunner:
    """Runs turns of agents with the APIs the stack serves (`deps`)."""

    def __init__(self, deps: dict[Api, Any], store: AgentStore, memory_top_k: int = 3) -> None:
        self.deps = deps
        self.apis = AgentApis.of(deps)
        self.store = store
        self.memory_top_k = memory_top_k

    # ---- the loop ---------------------------------------------------------------------

    async def run(
        self, state: TurnState, *, resumed: bool = False
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        turn = state.turn
        if not resumed:
            yield chunk(_turn_start(turn.turn_id))
            violation = None
            shields = state.config.input_shields
            messages = list(turn.input_messages)
            async for item in self._shields(state, shields, messages, "input_shields"):
                if isinstance(item, SafetyViolation):
                    violation = item
                else:
                    yield item
            if violation is not None:
                async for item in self._finish(state, _refusal(violation)):
                    yield item
                return
            async for item in self._memory_retrieval(state):
                yield item

        max_iters = state.config.max_infer_iters or 10
        while True:
            message: CompletionMessage | None = None
            async for item in self._inference(state):
                if isinstance(item, CompletionMessage):
                    message = item
                else:
                    yield item
            assert message is not None
            state.inference_steps += 1
            calls = list(message.tool_calls or [])
            if not calls:
                break
            if state.inference_steps >= max_iters:
                # Out of iterations with calls left: the turn ends with this message.
                message = message.model_copy(update={"stop_reason": StopReason.end_of_turn})
                break
            state.messages.append(message)
            server_calls = [c for c in calls if _name(c) not in state.tools.client]
            client_calls = [c for c in calls if _name(c) in state.tools.client]
            if server_calls:
                async for item in self._execute_tools(state, server_calls):
                    yield item
            if client_calls:
                yield await self._await_client(state, message, client_calls)
                return
            if state.tool_config.tool_choice not in (None, ToolChoice.auto, ToolChoice.none):
                # A required (or named) tool call is made once; then the model may answer
                # (a model forced to call a tool at every step never could).
                state.tool_config = state.tool_config.model_copy(
                    update={"tool_choice": ToolChoice.auto}
                )

        violation = None
        async for item in self._shields(
            state, state.config.output_shields, [message], "output_shields"
        ):
            if isinstance(item, SafetyViolation):
                violation = item
            else:
                yield item
        answer = _refusal(violation) if violation is not None else message
        async for item in self._finish(state, answer):
            yield item

    async def resume(
        self, state: TurnState, pending_calls: list[ToolCall], responses: list[ToolResponse]
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        """Continue a turn paused for client tools with the client's responses."""
        by_id = {r.call_id: r for r in responses}
        wanted = [c.call_id for c in pending_calls]
        unknown = sorted(set(by_id) - set(wanted))
        missing = [c for c in wanted if c not in by_id]
        if unknown or missing:
            raise BadRequestError(
                f"tool_responses must answer the turn's pending tool calls {wanted}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else ""),
                field="tool_responses",
            )
        step = ToolExecutionStep(
            turn_id=state.turn.turn_id,
            step_id=new_id(),
            started_at=now(),
            tool_calls=pending_calls,
            tool_responses=[by_id[c] for c in wanted],
        )
        yield chunk(_step_start(step))
        step.completed_at = now()
        state.messages.extend(
            ToolResponseMessage(call_id=r.call_id, content=r.content) for r in step.tool_responses
        )
        yield self._complete(state, step)
        async for item in self.run(state, resumed=True):
            yield item

    # ---- steps ------------------------------------------------------------------------

    def _complete(self, state: TurnState, step: Step) -> AgentTurnResponseStreamChunk:
        state.turn.steps.append(step)
        return chunk(
            AgentTurnResponseStepCompletePayload(
                step_type=StepType(step.step_type), step_id=step.step_id, step_details=step
            )
        )

    async def _shields(
        self, state: TurnState, shields: list[str] | None, messages: list[Any], kind: str
    ) -> AsyncIterator[AgentTurnResponseStreamChunk | SafetyViolation]:
        """One shield_call step running every shield; yields the stopping violation last."""
        if not shields:
            return
        safety = self.apis.safety
        if safety is None:
            raise BadRequestError(
                f"shields {shields} need the safety API, which this stack does not serve",
                field=f"agent_config.{kind}",
            )
        step = ShieldCallStep(turn_id=state.turn.turn_id, step_id=new_id(), started_at=now())
        yield chunk(_step_start(step))
        found: SafetyViolation | None = None
        for shield_id in shields:
            try:
                result = await safety.run_shield(
                    RunShieldRequest(shield_id=shield_id, messages=messages)
                )
            except Exception as exc:
                raise to_stack_error(exc, api="safety") from None
            violation = result.violation
            if violation is None:
                continue
            if found is None or (
                violation.violation_level == ViolationLevel.error
                and found.violation_level != ViolationLevel.error
            ):
                found = violation
            if violation.violation_level == ViolationLevel.error:
                break
        step.violation = found
        step.completed_at = now()
        yield self._complete(state, step)
        if found is not None and found.violation_level == ViolationLevel.error:
            yield found

    async def _memory_retrieval(self, state: TurnState) -> AsyncIterator[Any]:
        """For an agent without the RAG tool: the session's documents most relevant to the
        user's message, given to the model as the message's context."""
        vector_db_id = self._session_vector_db(state.turn.session_id)
        if vector_db_id is None or RAG_TOOL in state.tools.server_args:
            return
        vector_io = self.apis.vector_io
        if vector_io is None:
            return
        position, query = _last_user_message(state.messages)
        if position is None:
            return
        step = MemoryRetrievalStep(
            turn_id=state.turn.turn_id,
            step_id=new_id(),
            started_at=now(),
            vector_db_ids=vector_db_id,
            inserted_context="",
        )
        yield chunk(_step_start(step))
        try:
            result = await vector_io.query_chunks(
                QueryChunksRequest(
                    vector_db_id=vector_db_id,
                    query=query,
                    params={"max_chunks": self.memory_top_k},
                )
            )
        except Exception as exc:
            raise to_stack_error(exc, api="vector_io") from None
        texts = [content_text(c.content) for c in result.chunks]
        context = ""
        if texts:
            context = "Here are documents of this conversation that may help:\n" + "\n\n".join(
                f"[{i + 1}] {t}" for i, t in enumerate(texts)
            )
            user = state.messages[position]
            assert isinstance(user, UserMessage)
            state.messages[position] = user.model_copy(update={"context": context})
        step.inserted_context = context
        step.completed_at = now()
        yield self._complete(state, step)

    def _session_vector_db(self, session_id: str) -> str | None:
        doc = self.store.sessions.get(session_id)
        return None if doc is None else doc.get("vector_db_id")

    async def _inference(self, state: TurnState) -> AsyncIterator[Any]:
        """One inference step, streamed; yields the model's message last."""
        config = state.config
        try:
            request = ChatCompletionRequest(
                model_id=config.model,
                messages=state.messages,
                sampling_params=config.sampling_params,
                tools=state.tools.definitions or None,
                tool_config=state.tool_config,
                response_format=config.response_format,
                stream=True,
            )
        except ValidationError as exc:
            raise BadRequestError(f"invalid inference request: {exc.errors()[0]['msg']}") from None
        step_id = new_id()
        started = now()
        yield chunk(
            AgentTurnResponseStepStartPayload(step_type=StepType.inference, step_id=step_id)
        )
        text: list[str] = []
        calls: list[ToolCall] = []
        stop = StopReason.end_of_turn
        try:
            async for piece in self.apis.inference.chat_completion_stream(request):
                event = piece.event
                delta = event.delta
                if isinstance(delta, TextDelta) and delta.text:
                    text.append(delta.text)
                    yield chunk(_progress(step_id, delta))
                elif isinstance(delta, ToolCallDelta):
                    if delta.parse_status == ToolCallParseStatus.succeeded and isinstance(
                        delta.tool_call, ToolCall
                    ):
                        calls.append(delta.tool_call)
                    yield chunk(_progress(step_id, delta))
                if event.event_type == ChatCompletionResponseEventType.complete:
                    stop = event.stop_reason or stop
        except Exception as exc:
            raise to_stack_error(exc, api="inference") from None
        if calls and stop == StopReason.end_of_turn:
            stop = StopReason.end_of_message
        message = CompletionMessage(content="".join(text), stop_reason=stop, tool_calls=calls)
        step = InferenceStep(
            turn_id=state.turn.turn_id,
            step_id=step_id,
            started_at=started,
            completed_at=now(),
            model_response=message,
        )
        yield self._complete(state, step)
        yield message

    async def _execute_tools(
        self, state: TurnState, calls: list[ToolCall]
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        step = ToolExecutionStep(
            turn_id=state.turn.turn_id,
            step_id=new_id(),
            started_at=now(),
            tool_calls=calls,
            tool_responses=[],
        )
        yield chunk(_step_start(step))
        for call in calls:
            response = await self._invoke(state, call)
            step.tool_responses.append(response)
            state.messages.append(
                ToolResponseMessage(call_id=call.call_id, content=response.content)
            )
        step.completed_at = now()
        yield self._complete(state, step)

    async def _invoke(self, state: TurnState, call: ToolCall) -> ToolResponse:
        name = _name(call)
        if name not in state.tools.server_args:
            return ToolResponse(
                call_id=call.call_id,
                tool_name=call.tool_name,
                content=f"error: unknown tool {name!r}",
            )
        arguments: Any = call.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                return ToolResponse(
                    call_id=call.call_id,
                    tool_name=call.tool_name,
                    content=f"error: the arguments of {name!r} are not a JSON object",
                )
        kwargs = {**arguments, **state.tools.server_args[name]}
        if name == RAG_TOOL:
            session_db = self._session_vector_db(state.turn.session_id)
            if session_db is not None:
                ids = list(kwargs.get("vector_db_ids") or [])
                kwargs["vector_db_ids"] = [*ids, session_db] if session_db not in ids else ids
        runtime = self.apis.tool_runtime
        if runtime is None:  # server tools come from the tool runtime
            return ToolResponse(
                call_id=call.call_id,
                tool_name=call.tool_name,
                content="error: this stack serves no tool runtime",
            )
        try:
            result = await runtime.invoke_tool(InvokeToolRequest(tool_name=name, kwargs=kwargs))
        except Exception as exc:
            err = to_stack_error(exc, api="tool_runtime")
            return ToolResponse(
                call_id=call.call_id, tool_name=call.tool_name, content=f"error: {err.message}"
            )
        content: Any = result.content if result.content is not None else ""
        if result.error_message:
            content = f"error: {result.error_message}"
        return ToolResponse(
            call_id=call.call_id,
            tool_name=call.tool_name,
            content=content,
            metadata=result.metadata,
        )

    async def _await_client(
        self, state: TurnState, message: CompletionMessage, client_calls: list[ToolCall]
    ) -> AgentTurnResponseStreamChunk:
        turn = state.turn.model_copy(
            update={
                "output_message": message.model_copy(
                    update={"tool_calls": client_calls, "stop_reason": StopReason.end_of_message}
                ),
                "completed_at": None,
            }
        )
        pending = PendingTurn(
            agent_id=state.agent_id,
            turn=turn,
            messages=state.messages,
            pending_calls=client_calls,
            inference_steps=state.inference_steps,
            toolgroups=state.toolgroups,
            tool_config=state.tool_config.model_dump(mode="json"),
        )
        self.store.put_turn(state.agent_id, turn, pending)
        return chunk(AgentTurnResponseTurnAwaitingInputPayload(turn=turn))

    async def _finish(
        self, state: TurnState, answer: CompletionMessage
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        turn = state.turn
        turn.output_message = answer
        turn.completed_at = now()
        self.store.put_turn(state.agent_id, turn)
        yield chunk(AgentTurnResponseTurnCompletePayload(turn=turn))


# ---- helpers ----------------------------------------------------------------------------


def _name(call: ToolCall) -> str:
    return str(getattr(call.tool_name, "value", call.tool_name))


def _turn_start(turn_id: str) -> AgentTurnResponseEventPayload:
    return AgentTurnResponseTurnStartPayload(turn_id=turn_id)


def _step_start(step: Step) -> AgentTurnResponseStepStartPayload:
    return AgentTurnResponseStepStartPayload(
        step_type=StepType(step.step_type), step_id=step.step_id
    )


def _progress(
    step_id: str, delta: TextDelta | ToolCallDelta
) -> AgentTurnResponseStepProgressPayload:
    return AgentTurnResponseStepProgressPayload(
        step_type=StepType.inference, step_id=step_id, delta=delta
    )


def _refusal(violation: SafetyViolation) -> CompletionMessage:
    return CompletionMessage(
        content=violation.user_message or SHIELD_REFUSAL, stop_reason=StopReason.end_of_turn
    )


def _last_user_message(messages: list[Message]) -> tuple[int | None, str]:
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, UserMessage):
            return i, content_text(m.content)
    return None, ""
