"""One row's answer from the candidate, and the row the scoring functions then read.

A row's input is, in this order: `chat_completion_input` (messages, or their JSON text,
as Llama Stack 0.2.12's eval datasets have), `messages`, `completion_input` (a plain
completion), or `input_query` / `question` (one user message). The scoring row is the
input row with ``generated_answer``, and with ``input_query`` / ``expected_answer`` taken
from ``question`` / ``answer`` when the row names them so.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import TypeAdapter, ValidationError

from stackray.api.agents import (
    CreateAgentRequest,
    CreateAgentSessionRequest,
    CreateAgentTurnRequest,
)
from stackray.api.common import Message, UserMessage, interleaved_content_as_str
from stackray.api.datatypes import Api
from stackray.api.eval import AgentCandidate, ModelCandidate
from stackray.api.inference import ChatCompletionRequest, CompletionRequest

_MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


class RowError(ValueError):
    """The row cannot be asked (no input column, malformed messages)."""


def _messages(value: Any, column: str) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RowError(f"{column} is not JSON ({e.msg})") from None
    try:
        return _MESSAGES.validate_python(value)
    except ValidationError as e:
        raise RowError(f"{column} is not a list of messages: {e.errors()[0]['msg']}") from None


def row_input(row: dict[str, Any]) -> tuple[str, Any]:
    """("chat", messages) or ("completion", text) for `row`."""
    for column in ("chat_completion_input", "messages"):
        if column in row and row[column] is not None:
            return "chat", _messages(row[column], column)
    if row.get("completion_input") is not None:
        return "completion", str(row["completion_input"])
    for column in ("input_query", "question"):
        if row.get(column) is not None:
            return "chat", [UserMessage(content=str(row[column]))]
    raise RowError(
        "the row has none of the input columns chat_completion_input, messages, "
        "completion_input, input_query, question"
    )


def scoring_row(row: dict[str, Any], generation: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if "input_query" not in out and "question" in out:
        out["input_query"] = out["question"]
    if "expected_answer" not in out and "answer" in out:
        out["expected_answer"] = out["answer"]
    out.update(generation)
    return out


class Generator:
    """Asks the candidate, through the stack's Inference or Agents API."""

    def __init__(self, candidate: ModelCandidate | AgentCandidate, deps: dict[Api, Any]) -> None:
        self.candidate = candidate
        self.inference = deps.get(Api.inference)
        self.agents = deps.get(Api.agents)
        self._agent_id: str | None = None

    async def start(self) -> None:
        """Check the candidate (create the agent) before any row is asked."""
        if isinstance(self.candidate, AgentCandidate):
            if self.agents is None:
                from stackray.api.errors import BadRequestError

                raise BadRequestError(
                    "an agent candidate needs the agents API, which this stack does not serve",
                    field="benchmark_config.eval_candidate",
                )
            created = await self.agents.create_agent(
                CreateAgentRequest(agent_config=self.candidate.config)
            )
            self._agent_id = created.agent_id
        else:
            from stackray.api.errors import BadRequestError, NotFoundError
            from stackray.api.models import ModelType
            from stackray.runtime.errors import unwrap

            try:
                model = await self.inference.get_model(self.candidate.model)  # type: ignore[union-attr]
            except Exception as exc:
                if isinstance(unwrap(exc), NotFoundError):
                    raise BadRequestError(
                        f"model {self.candidate.model!r} is not registered",
                        field="benchmark_config.eval_candidate.model",
                    ) from None
                raise
            if model.model_type != ModelType.llm:
                raise BadRequestError(
                    f"model {self.candidate.model!r} is an {model.model_type.value} model, not an llm",
                    field="benchmark_config.eval_candidate.model",
                )

    async def close(self) -> None:
        if self._agent_id is not None and self.agents is not None:
            await self.agents.delete_agent(self._agent_id)
            self._agent_id = None

    async def generate(self, row: dict[str, Any]) -> dict[str, Any]:
        """{"generated_answer": text}; raises `RowError` for a row it cannot ask."""
        kind, value = row_input(row)
        candidate = self.candidate
        if isinstance(candidate, AgentCandidate):
            assert self._agent_id is not None and self.agents is not None
            turn_messages = (
                [m for m in value if m.role in ("user", "tool")]
                if kind == "chat"
                else [UserMessage(content=value)]
            )
            session = await self.agents.create_agent_session(
                self._agent_id, CreateAgentSessionRequest(session_name=f"eval-{uuid.uuid4().hex}")
            )
            turn = await self.agents.create_agent_turn(
                self._agent_id, session.session_id, CreateAgentTurnRequest(messages=turn_messages)
            )
            return {"generated_answer": interleaved_content_as_str(turn.output_message.content)}
        assert self.inference is not None
        if kind == "completion":
            completion = await self.inference.completion(
                CompletionRequest(
                    model_id=candidate.model,
                    content=value,
                    sampling_params=candidate.sampling_params,
                )
            )
            return {"generated_answer": completion.content}
        messages = list(value)
        if candidate.system_message is not None:
            messages = [candidate.system_message, *messages]
        chat = await self.inference.chat_completion(
            ChatCompletionRequest(
                model_id=candidate.model,
                messages=messages,
                sampling_params=candidate.sampling_params,
            )
        )
        return {"generated_answer": interleaved_content_as_str(chat.completion_message.content)}
