"""Routes of the agents API: agents, sessions, turns (streamed as server-sent events or
whole), resume, turn and step lookup; and the OpenAI Responses API."""

from __future__ import annotations

from fastapi import Query
from fastapi.responses import Response

from stackray.api.agents import (
    CreateAgentRequest,
    CreateAgentSessionRequest,
    CreateAgentTurnRequest,
    ResumeAgentTurnRequest,
)
from stackray.api.datatypes import Api
from stackray.api.responses import CreateOpenaiResponseRequest
from stackray.deployments.routes import Routes

AGENTS = Api.agents.value


def register(routes: Routes) -> None:
    call, stream, json = routes.call, routes.stream, routes.json

    # ---- agents -----------------------------------------------------------------------

    async def create_agent(body: CreateAgentRequest) -> Response:
        return json(await call(AGENTS, "create_agent", body))

    async def list_agents(
        start_index: int | None = Query(default=None), limit: int | None = Query(default=None)
    ) -> Response:
        return json(await call(AGENTS, "list_agents", start_index, limit))

    async def get_agent(agent_id: str) -> Response:
        return json(await call(AGENTS, "get_agent", agent_id))

    async def delete_agent(agent_id: str) -> Response:
        await call(AGENTS, "delete_agent", agent_id)
        return json(None)

    routes.add(Api.agents, "POST", "/v1/agents", create_agent)
    routes.add(Api.agents, "GET", "/v1/agents", list_agents)
    routes.add(Api.agents, "GET", "/v1/agents/{agent_id}", get_agent)
    routes.add(Api.agents, "DELETE", "/v1/agents/{agent_id}", delete_agent)

    # ---- sessions ---------------------------------------------------------------------

    async def create_session(agent_id: str, body: CreateAgentSessionRequest) -> Response:
        return json(await call(AGENTS, "create_agent_session", agent_id, body))

    async def get_session(
        agent_id: str, session_id: str, turn_ids: list[str] | None = Query(default=None)
    ) -> Response:
        # llama-stack-client sends a list as one comma-separated value; others repeat it.
        ids = [i for value in turn_ids or [] for i in value.split(",") if i] or None
        return json(await call(AGENTS, "get_agents_session", agent_id, session_id, ids))

    async def list_sessions(
        agent_id: str,
        start_index: int | None = Query(default=None),
        limit: int | None = Query(default=None),
    ) -> Response:
        return json(await call(AGENTS, "list_agent_sessions", agent_id, start_index, limit))

    async def delete_session(agent_id: str, session_id: str) -> Response:
        await call(AGENTS, "delete_agents_session", agent_id, session_id)
        return json(None)

    session = "/v1/agents/{agent_id}/session/{session_id}"
    routes.add(Api.agents, "POST", "/v1/agents/{agent_id}/session", create_session)
    routes.add(Api.agents, "GET", "/v1/agents/{agent_id}/sessions", list_sessions)
    routes.add(Api.agents, "GET", session, get_session)
    routes.add(Api.agents, "DELETE", session, delete_session)

    # ---- turns ------------------------------------------------------------------------

    async def create_turn(agent_id: str, session_id: str, body: CreateAgentTurnRequest) -> Response:
        if body.stream:
            return await stream(AGENTS, "create_agent_turn_stream", agent_id, session_id, body)
        return json(await call(AGENTS, "create_agent_turn", agent_id, session_id, body))

    async def resume_turn(
        agent_id: str, session_id: str, turn_id: str, body: ResumeAgentTurnRequest
    ) -> Response:
        if body.stream:
            return await stream(
                AGENTS, "resume_agent_turn_stream", agent_id, session_id, turn_id, body
            )
        return json(await call(AGENTS, "resume_agent_turn", agent_id, session_id, turn_id, body))

    async def get_turn(agent_id: str, session_id: str, turn_id: str) -> Response:
        return json(await call(AGENTS, "get_agents_turn", agent_id, session_id, turn_id))

    async def get_step(agent_id: str, session_id: str, turn_id: str, step_id: str) -> Response:
        return json(await call(AGENTS, "get_agents_step", agent_id, session_id, turn_id, step_id))

    turn = f"{session}/turn/{{turn_id}}"
    routes.add(Api.agents, "POST", f"{session}/turn", create_turn)
    routes.add(Api.agents, "GET", turn, get_turn)
    routes.add(Api.agents, "POST", f"{turn}/resume", resume_turn)
    routes.add(Api.agents, "GET", f"{turn}/step/{{step_id}}", get_step)

    # ---- OpenAI Responses (under /v1/openai/v1 and /v1) --------------------------------

    async def create_response(body: CreateOpenaiResponseRequest) -> Response:
        if body.stream:
            return await stream(AGENTS, "create_openai_response_stream", body, openai=True)
        return json(await call(AGENTS, "create_openai_response", body))

    async def list_responses(
        after: str | None = Query(default=None),
        limit: int | None = Query(default=50),
        model: str | None = Query(default=None),
        order: str = Query(default="desc"),
    ) -> Response:
        return json(await call(AGENTS, "list_openai_responses", after, limit, model, order))

    async def get_response(response_id: str) -> Response:
        return json(await call(AGENTS, "get_openai_response", response_id))

    async def list_input_items(
        response_id: str,
        after: str | None = Query(default=None),
        before: str | None = Query(default=None),
        include: list[str] | None = Query(default=None),
        limit: int | None = Query(default=20),
        order: str = Query(default="desc"),
    ) -> Response:
        return json(
            await call(
                AGENTS,
                "list_openai_response_input_items",
                response_id,
                after,
                before,
                include,
                limit,
                order,
            )
        )

    routes.add(Api.agents, "POST", "/responses", create_response, openai=True)
    routes.add(Api.agents, "GET", "/responses", list_responses, openai=True)
    routes.add(Api.agents, "GET", "/responses/{response_id}", get_response, openai=True)
    routes.add(
        Api.agents, "GET", "/responses/{response_id}/input_items", list_input_items, openai=True
    )
