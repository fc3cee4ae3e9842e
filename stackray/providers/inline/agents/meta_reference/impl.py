"""`inline::meta-reference`: the agents API on the stack's own Inference, Safety,
ToolRuntime and VectorIO APIs.

It is also the agents router (`stackray.runtime.routers.agents`): agents have no resources
to route between providers, so the one provider serves the API directly. Agents, sessions
and turns live in the agents store (`AgentStore`), so any replica serves any session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from stackray.api.agents import (
    Agent,
    AgentConfig,
    AgentCreateResponse,
    AgentSessionCreateResponse,
    AgentStepResponse,
    AgentToolGroupWithArgs,
    AgentTurnResponseStreamChunk,
    AgentTurnResponseTurnAwaitingInputPayload,
    AgentTurnResponseTurnCompletePayload,
    CreateAgentRequest,
    CreateAgentSessionRequest,
    CreateAgentTurnRequest,
    Document,
    PaginatedResponse,
    ResumeAgentTurnRequest,
    Session,
    Turn,
)
from stackray.api.common import (
    CompletionMessage,
    Message,
    StopReason,
    SystemMessage,
    ToolChoice,
    ToolConfig,
    ToolDefinition,
    ToolParamDefinition,
)
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError, StackError
from stackray.api.models import Model, ModelType
from stackray.api.vector_io import Chunk, InsertChunksRequest, RegisterVectorDbRequest
from stackray.providers.inline.agents.meta_reference.apis import AgentApis
from stackray.providers.inline.agents.meta_reference.config import MetaReferenceAgentsConfig
from stackray.providers.inline.agents.meta_reference.context import (
    chunk_words,
    document_text,
    estimate_tool_tokens,
    fit_history,
    turn_messages,
)
from stackray.providers.inline.agents.meta_reference.persistence import AgentStore
from stackray.providers.inline.agents.meta_reference.responses import OpenAIResponses
from stackray.providers.inline.agents.meta_reference.turn import (
    TurnRunner,
    TurnState,
    TurnTools,
    new_id,
    now,
)
from stackray.runtime.access_control import OPEN_POLICY
from stackray.runtime.errors import to_stack_error
from stackray.runtime.owned import OwnedDocuments
from stackray.runtime.resources import access_policy
from stackray.runtime.storage import DocumentStore, SqliteStoreConfig


def _page(
    items: list[dict[str, Any]], start_index: int | None, limit: int | None
) -> PaginatedResponse:
    start = start_index or 0
    if start < 0:
        raise BadRequestError("start_index must be at least 0", field="start_index")
    if limit is not None and limit < 1:
        raise BadRequestError("limit must be at least 1", field="limit")
    end = len(items) if limit is None else start + limit
    return PaginatedResponse(data=items[start:end], has_more=end < len(items))


class MetaReferenceAgents(OpenAIResponses):
    """The agents API: agents, sessions, turns (streamed or whole), resume, steps; and the
    OpenAI Responses API (`OpenAIResponses`)."""

    def __init__(
        self, config: MetaReferenceAgentsConfig, deps: dict[Api, Any], context: Any
    ) -> None:
        self.config = config
        self.deps = deps
        self.apis = AgentApis.of(deps)
        store_config = config.persistence_store or SqliteStoreConfig(
            db_path=str(context.data_dir / "agents_store.db")
        )
        stack = getattr(context, "stack", None)
        self.store = AgentStore(store_config, access_policy(stack) if stack else OPEN_POLICY)
        self.responses = DocumentStore(
            config.responses_store or store_config,
            "openai_responses",
            {"created": int, "model": str},
        )
        self.response_access = OwnedDocuments(self.store.agent_access.policy, "response")
        self.runner = TurnRunner(deps, self.store, memory_top_k=config.memory_top_k)

    async def health(self) -> None:
        """Raises if the agents store is unreachable."""
        self.store.agents.count()

    def close(self) -> None:
        self.store.close()
        self.responses.close()

    # ---- agents -----------------------------------------------------------------------

    async def create_agent(self, request: CreateAgentRequest) -> AgentCreateResponse:
        config = request.agent_config
        await self._check_model(config.model)
        await self._check_shields(config, "agent_config")
        tools = await self._resolve_tools(config, None, field="agent_config.toolgroups")
        self._check_tool_choice(config.tool_config, tools, "agent_config.tool_config.tool_choice")
        agent = Agent(agent_id=new_id(), agent_config=config, created_at=now())
        self.store.put_agent(agent)
        return AgentCreateResponse(agent_id=agent.agent_id)

    def get_agent(self, agent_id: str) -> Agent:
        return self.store.get_agent(agent_id)

    def list_agents(
        self, start_index: int | None = None, limit: int | None = None
    ) -> PaginatedResponse:
        agents = [a.model_dump(mode="json", exclude_none=True) for a in self.store.list_agents()]
        return _page(agents, start_index, limit)

    async def delete_agent(self, agent_id: str) -> None:
        """Deletes the agent, its sessions and turns, and its sessions' vector dbs."""
        for session in self.store.delete_agent(agent_id):
            await self._drop_session_vector_db(session)

    # ---- sessions ---------------------------------------------------------------------

    def create_agent_session(
        self, agent_id: str, request: CreateAgentSessionRequest
    ) -> AgentSessionCreateResponse:
        self.store.get_agent(agent_id)
        started = now()
        session_id = new_id()
        self.store.put_session(
            {
                "session_id": session_id,
                "agent_id": agent_id,
                "session_name": request.session_name,
                "started_at": started.isoformat(),
                "created": started.timestamp(),
                "vector_db_id": None,
            }
        )
        return AgentSessionCreateResponse(session_id=session_id)

    def _session(self, doc: dict[str, Any], turn_ids: list[str] | None = None) -> Session:
        turns = [t for t, _ in self.store.list_turns(doc["session_id"])]
        if turn_ids:
            wanted = set(turn_ids)
            turns = [t for t in turns if t.turn_id in wanted]
        return Session(
            session_id=doc["session_id"],
            session_name=doc["session_name"],
            turns=turns,
            started_at=datetime.fromisoformat(doc["started_at"]),
        )

    def get_agents_session(
        self, agent_id: str, session_id: str, turn_ids: list[str] | None = None
    ) -> Session:
        self.store.get_agent(agent_id)
        return self._session(self.store.get_session(agent_id, session_id), turn_ids)

    def list_agent_sessions(
        self, agent_id: str, start_index: int | None = None, limit: int | None = None
    ) -> PaginatedResponse:
        self.store.get_agent(agent_id)
        sessions = [
            self._session(doc).model_dump(mode="json", exclude_none=True)
            for doc in self.store.list_sessions(agent_id)
        ]
        return _page(sessions, start_index, limit)

    async def delete_agents_session(self, agent_id: str, session_id: str) -> None:
        """Deletes the session, its turns, and its vector db (of its documents)."""
        self.store.get_agent(agent_id)
        await self._drop_session_vector_db(self.store.delete_session(agent_id, session_id))

    async def _drop_session_vector_db(self, session: dict[str, Any]) -> None:
        vector_db_id = session.get("vector_db_id")
        vector_io = self.apis.vector_io
        if vector_db_id is None or vector_io is None:
            return
        try:
            await vector_io.unregister_vector_db(vector_db_id)
        except Exception as exc:
            err = to_stack_error(exc, api="vector_io")
            if not isinstance(err, NotFoundError):  # already gone: nothing to do
                raise err from None

    # ---- turns ------------------------------------------------------------------------

    async def create_agent_turn(
        self, agent_id: str, session_id: str, request: CreateAgentTurnRequest
    ) -> Turn:
        return await _last_turn(self.create_agent_turn_stream(agent_id, session_id, request))

    async def create_agent_turn_stream(
        self, agent_id: str, session_id: str, request: CreateAgentTurnRequest
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        # Everything that can be refused is checked before the first event.
        state = await self._new_turn(agent_id, session_id, request)
        async for item in self.runner.run(state):
            yield item

    async def resume_agent_turn(
        self, agent_id: str, session_id: str, turn_id: str, request: ResumeAgentTurnRequest
    ) -> Turn:
        return await _last_turn(
            self.resume_agent_turn_stream(agent_id, session_id, turn_id, request)
        )

    async def resume_agent_turn_stream(
        self, agent_id: str, session_id: str, turn_id: str, request: ResumeAgentTurnRequest
    ) -> AsyncIterator[AgentTurnResponseStreamChunk]:
        agent = self.store.get_agent(agent_id)
        self.store.get_session(agent_id, session_id)
        pending = self.store.get_pending(session_id, turn_id)
        if pending is None:
            raise ConflictError(
                f"turn {turn_id!r} is not awaiting tool responses (it is complete)",
            )
        config = agent.agent_config
        tools = await self._resolve_tools(config, pending.toolgroups, field="toolgroups")
        state = TurnState(
            agent_id=agent_id,
            config=config,
            turn=pending.turn,
            messages=pending.messages,
            tools=tools,
            tool_config=ToolConfig.model_validate(pending.tool_config or {}),
            toolgroups=pending.toolgroups,
            inference_steps=pending.inference_steps,
        )
        async for item in self.runner.resume(state, pending.pending_calls, request.tool_responses):
            yield item

    def get_agents_turn(self, agent_id: str, session_id: str, turn_id: str) -> Turn:
        self.store.get_agent(agent_id)
        self.store.get_session(agent_id, session_id)
        return self.store.get_turn(session_id, turn_id)

    def get_agents_step(
        self, agent_id: str, session_id: str, turn_id: str, step_id: str
    ) -> AgentStepResponse:
        turn = self.get_agents_turn(agent_id, session_id, turn_id)
        for step in turn.steps:
            if step.step_id == step_id:
                return AgentStepResponse(step=step)
        raise NotFoundError(f"step {step_id!r} of turn {turn_id!r} not found", field="step_id")

    # ---- preparing a turn -------------------------------------------------------------

    async def _new_turn(
        self, agent_id: str, session_id: str, request: CreateAgentTurnRequest
    ) -> TurnState:
        started = now()  # the turn's time includes preparing it (store reads, tools, history)
        agent = self.store.get_agent(agent_id)
        session = self.store.get_session(agent_id, session_id)
        config = agent.agent_config
        if not request.messages:
            raise BadRequestError("a turn needs at least one message", field="messages")
        await self._check_shields(config, "agent_config", registered=False)
        toolgroups = request.toolgroups
        tools = await self._resolve_tools(config, toolgroups, field="toolgroups")
        tool_config = request.tool_config or config.tool_config or ToolConfig()
        self._check_tool_choice(tool_config, tools, "tool_config.tool_choice")
        model = await self._check_model(config.model, field="agent_config.model")
        turn_id = new_id()
        if request.documents:
            await self._ingest(session, request.documents, turn_id)

        system: list[Message] = []
        if config.instructions:
            system.append(SystemMessage(content=config.instructions))
        history = [
            turn_messages(turn)
            for turn, awaiting in self.store.list_turns(session_id)
            if not awaiting
        ]
        context_window = int(model.metadata.get("context_length") or self.config.context_window)
        max_tokens = (config.sampling_params.max_tokens if config.sampling_params else 0) or 0
        reserved = max_tokens or self.config.reserved_output_tokens
        budget = context_window - reserved - estimate_tool_tokens(tools.definitions)
        messages, _dropped = fit_history(system, history, list(request.messages), budget)

        turn = Turn(
            turn_id=turn_id,
            session_id=session_id,
            input_messages=request.messages,
            steps=[],
            output_message=CompletionMessage(content="", stop_reason=StopReason.end_of_turn),
            started_at=started,
        )
        return TurnState(
            agent_id=agent_id,
            config=config,
            turn=turn,
            messages=messages,
            tools=tools,
            tool_config=tool_config,
            toolgroups=[
                t.model_dump(mode="json") if isinstance(t, AgentToolGroupWithArgs) else t
                for t in toolgroups or []
            ]
            or None,
        )

    async def _check_model(self, model_id: str, field: str = "agent_config.model") -> Model:
        try:
            model: Model = await self.apis.inference.get_model(model_id)
        except Exception as exc:
            err = to_stack_error(exc, api="inference")
            if isinstance(err, NotFoundError):
                raise BadRequestError(err.message, field=field) from None
            raise err from None
        if model.model_type != ModelType.llm:
            raise BadRequestError(
                f"model {model_id!r} is an {model.model_type.value} model; an agent needs an llm",
                field=field,
            )
        return model

    async def _check_shields(
        self, config: AgentConfig, prefix: str, registered: bool = True
    ) -> None:
        """The stack serves safety and, with `registered`, every input and output shield is
        registered (a 400 naming the first that is not). A turn checks only the former: a
        shield unregistered since the agent was made fails the turn when it runs, and a
        turn pays no lookups."""
        for name in ("input_shields", "output_shields"):
            shields = getattr(config, name)
            if not shields:
                continue
            if Api.safety not in self.deps:
                raise BadRequestError(
                    f"{name} {shields} need the safety API, which this stack does not serve",
                    field=f"{prefix}.{name}",
                )
            for i, shield_id in enumerate(shields if registered else ()):
                try:
                    await self.deps[Api.safety].get_shield(shield_id)
                except Exception as exc:
                    err = to_stack_error(exc, api="safety")
                    if isinstance(err, NotFoundError):
                        raise BadRequestError(err.message, field=f"{prefix}.{name}[{i}]") from None
                    raise err from None

    @staticmethod
    def _check_tool_choice(tool_config: ToolConfig | None, tools: TurnTools, field: str) -> None:
        choice = tool_config.tool_choice if tool_config is not None else None
        if choice is None or isinstance(choice, ToolChoice):
            return
        if choice not in tools.names:
            raise BadRequestError(
                f"tool_choice {choice!r} is not one of the agent's tools "
                f"({', '.join(sorted(tools.names)) or 'none'})",
                field=field,
            )

    async def _resolve_tools(
        self, config: AgentConfig, extra: list[Any] | None, field: str
    ) -> TurnTools:
        """The client tools plus the tools of every tool group (config's, then the turn's)."""
        tools = TurnTools()
        for tool in config.client_tools or []:
            if tool.name in tools.client:
                raise BadRequestError(
                    f"client tool {tool.name!r} is defined twice", field="agent_config.client_tools"
                )
            tools.client.add(tool.name)
            tools.definitions.append(
                ToolDefinition(
                    tool_name=tool.name,
                    description=tool.description,
                    parameters={
                        p.name: ToolParamDefinition(
                            param_type=p.parameter_type,
                            description=p.description,
                            required=p.required,
                            default=p.default,
                        )
                        for p in tool.parameters or []
                    },
                )
            )
        groups = [*(config.toolgroups or []), *(extra or [])]
        for position, group in enumerate(groups):
            if isinstance(group, dict):
                group = AgentToolGroupWithArgs.model_validate(group)
            name, args = (group, {}) if isinstance(group, str) else (group.name, group.args)
            where = "agent_config.toolgroups" if position < len(config.toolgroups or []) else field
            runtime = self.apis.tool_runtime
            if runtime is None:
                raise BadRequestError(
                    f"toolgroup {name!r} needs the tool_runtime API, which this stack does not serve",
                    field=where,
                )
            group_id, _, only = name.partition("/")
            try:
                listing = await runtime.list_runtime_tools(group_id, None)
            except Exception as exc:
                err = to_stack_error(exc, api="tool_runtime")
                if isinstance(err, NotFoundError | BadRequestError):
                    raise BadRequestError(
                        f"toolgroup {group_id!r}: {err.message}", field=where
                    ) from None
                raise err from None
            defs = [d for d in listing.data if not only or d.name == only]
            if only and not defs:
                raise BadRequestError(f"toolgroup {group_id!r} has no tool {only!r}", field=where)
            for d in defs:
                if d.name in tools.client or d.name in tools.server_args:
                    raise BadRequestError(f"tool {d.name!r} is offered twice", field=where)
                tools.server_args[d.name] = dict(args)
                tools.definitions.append(
                    ToolDefinition(
                        tool_name=d.name,
                        description=d.description,
                        parameters={
                            p.name: ToolParamDefinition(
                                param_type=p.parameter_type,
                                description=p.description,
                                required=p.required,
                                default=p.default,
                            )
                            for p in d.parameters or []
                        },
                    )
                )
        return tools

    # ---- documents --------------------------------------------------------------------

    async def _embedding_model(self) -> tuple[str, int | None]:
        inference = self.apis.inference
        if self.config.embedding_model:
            model: Model = await inference.get_model(self.config.embedding_model)
            return model.identifier, model.metadata.get("embedding_dimension")
        listing = await inference.list_models()
        for m in listing.data:
            if m.model_type == ModelType.embedding:
                return m.identifier, m.metadata.get("embedding_dimension")
        raise BadRequestError(
            "documents are indexed with an embedding model, and this stack serves none",
            field="documents",
        )

    async def _ingest(
        self, session: dict[str, Any], documents: list[Document], turn_id: str
    ) -> None:
        """Insert a turn's documents into the session's vector db (created on first use)."""
        vector_io = self.apis.vector_io
        if vector_io is None:
            raise BadRequestError(
                "documents need the vector_io API, which this stack does not serve",
                field="documents",
            )
        texts = [await document_text(d, i) for i, d in enumerate(documents)]
        try:
            vector_db_id = session.get("vector_db_id")
            if vector_db_id is None:
                embedding_model, dimension = await self._embedding_model()
                vector_db_id = f"session-{session['session_id']}"
                await vector_io.register_vector_db(
                    RegisterVectorDbRequest(
                        vector_db_id=vector_db_id,
                        embedding_model=embedding_model,
                        embedding_dimension=dimension,
                    )
                )
                session["vector_db_id"] = vector_db_id
                self.store.put_session(session)
            chunks: list[Chunk] = []
            for i, (document, text) in enumerate(zip(documents, texts, strict=True)):
                document_id = f"{turn_id}-{i}"
                pieces = chunk_words(
                    text, self.config.chunk_size_words, self.config.chunk_overlap_words
                )
                chunks.extend(
                    Chunk(
                        content=piece,
                        metadata={
                            "document_id": document_id,
                            "chunk_id": f"{document_id}-{j}",
                            "mime_type": document.mime_type,
                        },
                    )
                    for j, piece in enumerate(pieces)
                )
            if chunks:
                await vector_io.insert_chunks(
                    InsertChunksRequest(vector_db_id=vector_db_id, chunks=chunks)
                )
        except StackError:
            raise
        except Exception as exc:
            raise to_stack_error(exc, api="vector_io") from None


async def _last_turn(stream: AsyncIterator[AgentTurnResponseStreamChunk]) -> Turn:
    """The turn a streamed turn ends with (complete, or awaiting client tool responses)."""
    turn: Turn | None = None
    async for item in stream:
        payload = item.event.payload
        if isinstance(
            payload,
            AgentTurnResponseTurnCompletePayload | AgentTurnResponseTurnAwaitingInputPayload,
        ):
            turn = payload.turn
    if turn is None:  # pragma: no cover - every turn ends with one of the two
        raise StackError("the turn ended without a result")
    return turn
