"""The agents store: agents, sessions and turns as documents in three tables.

Every read goes to the database (no per-process cache), so an agent or session created
through one replica is usable from every other replica, and everything survives a restart.
A turn is stored whole when it completes or pauses for client tools; a paused turn also
keeps what resuming it needs (`PendingTurn`).

Agents and sessions record the caller who created them; the stack's access policy decides
who else reaches them (`stackray.runtime.access_control`), and a turn is reached through
its session. What the caller may not read answers exactly as an id that does not exist.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from stackray.api.agents import Agent, Turn
from stackray.api.common import ApiModel, Message, ToolCall
from stackray.api.errors import NotFoundError
from stackray.runtime.access_control import OPEN_POLICY, AccessPolicy, Action
from stackray.runtime.owned import OwnedDocuments, stamp
from stackray.runtime.storage import DocumentStore, PostgresStoreConfig, SqliteStoreConfig

MESSAGES = TypeAdapter(list[Message])


class PendingTurn(ApiModel):
    """A turn waiting for the client's tool responses."""

    agent_id: str
    turn: Turn
    messages: list[Message]
    """The conversation to continue from (system, history, this turn so far)."""
    pending_calls: list[ToolCall]
    """The client tool calls whose responses `resume` must bring."""
    inference_steps: int
    toolgroups: list[Any] | None = None
    tool_config: dict[str, Any] | None = None


class AgentStore:
    """Agents, sessions and turns in the configured store (SQLite or PostgreSQL)."""

    def __init__(
        self, config: SqliteStoreConfig | PostgresStoreConfig, policy: AccessPolicy = OPEN_POLICY
    ) -> None:
        self.agent_access = OwnedDocuments(policy, "agent")
        self.session_access = OwnedDocuments(policy, "session")
        self.agents = DocumentStore(config, "agents", {"created": float})
        self.sessions = DocumentStore(config, "agent_sessions", {"agent_id": str, "created": float})
        self.turns = DocumentStore(
            config, "agent_turns", {"session_id": str, "agent_id": str, "created": float}
        )

    def close(self) -> None:
        for store in (self.agents, self.sessions, self.turns):
            store.close()

    # ---- agents -----------------------------------------------------------------------

    def put_agent(self, agent: Agent) -> None:
        """Store a new agent, owned by the caller."""
        self.agent_access.require_create(agent.agent_id)
        self.agents.put(
            agent.agent_id,
            stamp(
                {"agent": agent.model_dump(mode="json"), "created": agent.created_at.timestamp()}
            ),
        )

    def _agent_doc(self, agent_id: str) -> dict[str, Any]:
        doc = self.agents.get(agent_id) if isinstance(agent_id, str) else None
        return self.agent_access.visible(doc, agent_id, "agent", "agent_id")

    def get_agent(self, agent_id: str) -> Agent:
        return Agent.model_validate(self._agent_doc(agent_id)["agent"])

    def list_agents(self) -> list[Agent]:
        docs, _ = self.agents.query(order_by="created", desc=False)
        return [
            Agent.model_validate(d["agent"])
            for d in docs
            if self.agent_access.readable(d, d["agent"]["agent_id"])
        ]

    def delete_agent(self, agent_id: str) -> list[dict[str, Any]]:
        """Delete the agent, its sessions and turns; returns the deleted sessions."""
        self.agent_access.require(Action.delete, self._agent_doc(agent_id), agent_id)
        sessions, _ = self.sessions.query(where={"agent_id": agent_id})
        for session in sessions:
            self.delete_session_turns(session["session_id"])
            self.sessions.delete(session["session_id"])
        self.agents.delete(agent_id)
        return sessions

    # ---- sessions ---------------------------------------------------------------------

    def put_session(self, doc: dict[str, Any]) -> None:
        """Store a session: a new one owned by the caller, an existing one keeping its owner."""
        existing = self.sessions.get(doc["session_id"])
        if existing is None:
            self.session_access.require_create(doc["session_id"])
            doc = stamp(dict(doc))
        else:
            self.session_access.require(Action.update, existing, doc["session_id"])
            doc = {**doc, **{k: v for k, v in existing.items() if k == "__owner__"}}
        self.sessions.put(doc["session_id"], doc)

    def get_session(self, agent_id: str, session_id: str) -> dict[str, Any]:
        doc = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if (
            doc is None
            or doc["agent_id"] != agent_id
            or not self.session_access.readable(doc, session_id)
        ):
            raise NotFoundError(
                f"session {session_id!r} of agent {agent_id!r} not found", field="session_id"
            )
        return doc

    def list_sessions(self, agent_id: str) -> list[dict[str, Any]]:
        docs, _ = self.sessions.query(where={"agent_id": agent_id}, order_by="created", desc=False)
        return [d for d in docs if self.session_access.readable(d, d["session_id"])]

    def delete_session(self, agent_id: str, session_id: str) -> dict[str, Any]:
        doc = self.get_session(agent_id, session_id)
        self.session_access.require(Action.delete, doc, session_id)
        self.delete_session_turns(session_id)
        self.sessions.delete(session_id)
        return doc

    # ---- turns ------------------------------------------------------------------------

    def put_turn(self, agent_id: str, turn: Turn, pending: PendingTurn | None = None) -> None:
        self.turns.put(
            turn.turn_id,
            {
                "session_id": turn.session_id,
                "agent_id": agent_id,
                "created": turn.started_at.timestamp(),
                "turn": turn.model_dump(mode="json"),
                "pending": pending.model_dump(mode="json") if pending is not None else None,
            },
        )

    def _turn_doc(self, session_id: str, turn_id: str) -> dict[str, Any]:
        doc = self.turns.get(turn_id)
        session = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if (
            doc is None
            or doc["session_id"] != session_id
            or not self.session_access.readable(session, session_id)
        ):
            raise NotFoundError(
                f"turn {turn_id!r} of session {session_id!r} not found", field="turn_id"
            )
        return doc

    def get_turn(self, session_id: str, turn_id: str) -> Turn:
        return Turn.model_validate(self._turn_doc(session_id, turn_id)["turn"])

    def get_pending(self, session_id: str, turn_id: str) -> PendingTurn | None:
        pending = self._turn_doc(session_id, turn_id)["pending"]
        return None if pending is None else PendingTurn.model_validate(pending)

    def list_turns(self, session_id: str) -> list[tuple[Turn, bool]]:
        """The session's turns, oldest first, each with whether it is still awaiting input."""
        docs, _ = self.turns.query(where={"session_id": session_id}, order_by="created", desc=False)
        return [(Turn.model_validate(d["turn"]), d["pending"] is not None) for d in docs]

    def delete_session_turns(self, session_id: str) -> None:
        docs, _ = self.turns.query(where={"session_id": session_id})
        for doc in docs:
            self.turns.delete(doc["turn"]["turn_id"])
