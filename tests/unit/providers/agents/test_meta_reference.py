"""The agents API end to end, in one process: the real `llama_stack_client` (and its
`Agent` helper, unchanged) over HTTP, the gateway, the agents router
(`inline::meta-reference`), the inference router and `remote::vllm` in front of a scripted
tool-calling model on 127.0.0.1.

Safety, tool runtime and vector IO are the stand-ins of `agent_standins`, for what only
they make deterministic or observable (a word-match shield, a warn-only shield, the exact
kwargs of every tool invocation); `standins=False` is a stack serving none of them. The
same turns on the real routers: `test_agents_real_routers.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import BadRequestError, ConflictError, NotFoundError
from llama_stack_client.lib.agents.agent import Agent

from tests.unit.support.agent_standins import REFUSAL
from tests.unit.support.agents_harness import MODEL, AgentsStack, start_stack
from tests.unit.support.scripted_model import Reply, ScriptedModel


@pytest.fixture(scope="module")
def _model() -> Iterator[ScriptedModel]:
    model = ScriptedModel().start()
    yield model
    model.stop()


@pytest.fixture()
def model(_model: ScriptedModel) -> ScriptedModel:
    return _model.reset()


@pytest.fixture()
def make_stack(model: ScriptedModel, tmp_path: Path) -> Iterator[Callable[..., AgentsStack]]:
    started: list[AgentsStack] = []

    def make(**kwargs: Any) -> AgentsStack:
        stack = start_stack(model, kwargs.pop("data_dir", tmp_path), **kwargs)
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.close()


@pytest.fixture()
def stack(make_stack: Callable[..., AgentsStack]) -> AgentsStack:
    return make_stack()


def get_weather(city: str) -> str:
    """Get the weather in a city.

    :param city: the city's name
    """
    return f"sunny in {city}"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def new_session(client: Any, **config: Any) -> tuple[str, str]:
    agent = client.agents.create(
        agent_config={"model": MODEL, "instructions": "You are helpful.", **config}
    )
    session = client.agents.session.create(agent_id=agent.agent_id, session_name="s")
    return agent.agent_id, session.session_id


# ---- agents and sessions ----------------------------------------------------------------


def test_agent_and_session_lifecycle(stack: AgentsStack) -> None:
    # llama-stack-client 0.2.12 has no methods for GET /v1/agents[/{id}] and
    # GET /v1/agents/{id}/sessions: those are read over plain HTTP.
    client = stack.client()
    http = httpx.Client(base_url=stack.url)
    config = {"model": MODEL, "instructions": "Be brief.", "name": "brief", "max_infer_iters": 3}
    agent_id = client.agents.create(agent_config=config).agent_id
    other = client.agents.create(agent_config={"model": MODEL, "instructions": "x"}).agent_id

    got = http.get(f"/v1/agents/{agent_id}").json()
    assert got["agent_id"] == agent_id and got["created_at"]
    assert got["agent_config"]["name"] == "brief" and got["agent_config"]["max_infer_iters"] == 3
    listed = http.get("/v1/agents").json()
    assert [a["agent_id"] for a in listed["data"]] == [agent_id, other]
    page = http.get("/v1/agents", params={"start_index": 1, "limit": 1}).json()
    assert [a["agent_id"] for a in page["data"]] == [other] and page["has_more"] is False
    assert http.get("/v1/agents", params={"limit": 1}).json()["has_more"] is True
    r = http.get("/v1/agents", params={"limit": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"

    s1 = client.agents.session.create(agent_id=agent_id, session_name="first").session_id
    s2 = client.agents.session.create(agent_id=agent_id, session_name="second").session_id
    session = client.agents.session.retrieve(session_id=s1, agent_id=agent_id)
    assert session.session_name == "first" and session.turns == []
    sessions = http.get(f"/v1/agents/{agent_id}/sessions").json()
    assert [s["session_id"] for s in sessions["data"]] == [s1, s2]
    assert sessions["data"][0]["session_name"] == "first"

    client.agents.session.delete(session_id=s1, agent_id=agent_id)
    with pytest.raises(NotFoundError, match=s1):
        client.agents.session.retrieve(session_id=s1, agent_id=agent_id)
    with pytest.raises(NotFoundError):  # a session of another agent
        client.agents.session.retrieve(session_id=s2, agent_id=other)

    client.agents.delete(agent_id)
    r = http.get(f"/v1/agents/{agent_id}")
    assert r.status_code == 404 and agent_id in r.json()["error"]["message"]
    with pytest.raises(NotFoundError):
        client.agents.session.create(agent_id=agent_id, session_name="x")
    assert http.get(f"/v1/agents/{agent_id}/sessions").status_code == 404
    assert [a["agent_id"] for a in http.get("/v1/agents").json()["data"]] == [other]


def test_agent_config_is_checked(make_stack: Callable[..., AgentsStack]) -> None:
    client = make_stack(standins=False).client()
    http = httpx.Client(base_url=client.base_url)

    def create(**config: Any) -> httpx.Response:
        body = {"model": MODEL, "instructions": "x", **config}
        return http.post("/v1/agents", json={"agent_config": body})

    r = create(model="nope")
    assert r.status_code == 400 and r.json()["error"]["param"] == "agent_config.model"
    r = create(model="embed")
    assert r.status_code == 400 and "embedding" in r.json()["error"]["message"]
    r = create(input_shields=["banned-words"])
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "agent_config.input_shields"
    assert "safety API" in r.json()["error"]["message"]
    with_safety = make_stack().client()
    r = httpx.post(
        f"{with_safety.base_url}/v1/agents",
        json={"agent_config": {"model": MODEL, "instructions": "x", "input_shields": ["nope"]}},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "agent_config.input_shields[0]"
    r = create(toolgroups=["builtin::rag"])
    assert r.status_code == 400 and r.json()["error"]["param"] == "agent_config.toolgroups"
    assert "tool_runtime API" in r.json()["error"]["message"]
    r = create(max_infer_iters=0)
    assert r.status_code == 400 and "max_infer_iters" in r.json()["error"]["message"]
    r = create(tool_config={"tool_choice": "get_weather"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "agent_config.tool_config.tool_choice"
    r = create(sampling_params={"strategy": {"type": "top_p", "temperature": -1}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "agent_config.sampling_params.strategy.temperature"
    r = create(surprise=True)
    assert r.status_code == 400 and "surprise" in r.json()["error"]["message"]


def test_unknown_toolgroup_is_a_400(stack: AgentsStack) -> None:
    with pytest.raises(BadRequestError, match="no::such"):
        new_session(stack.client(), toolgroups=["no::such"])
    with pytest.raises(BadRequestError, match="no tool 'nope'"):
        new_session(stack.client(), toolgroups=["test::math/nope"])


# ---- turns ------------------------------------------------------------------------------


def test_turn_without_tools(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client, sampling_params={"max_tokens": 64})
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("hello there")], stream=False
    )
    assert turn.output_message.content == "echo: hello there"
    assert turn.output_message.stop_reason == "end_of_turn"
    assert [s.step_type for s in turn.steps] == ["inference"]
    step = turn.steps[0]
    assert step.started_at <= step.completed_at
    assert turn.started_at <= turn.completed_at
    sent = model.chats[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You are helpful."}
    assert sent["messages"][-1] == {"role": "user", "content": "hello there"}
    assert "tools" not in sent and sent["max_tokens"] == 64

    again = client.agents.turn.retrieve(
        turn_id=turn.turn_id, agent_id=agent_id, session_id=session_id
    )
    assert again.model_dump() == turn.model_dump()
    got = client.agents.steps.retrieve(
        step_id=step.step_id, agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id
    )
    assert got.step.api_model_response.content == "echo: hello there"
    with pytest.raises(NotFoundError, match="step"):
        client.agents.steps.retrieve(
            step_id="nope", agent_id=agent_id, session_id=session_id, turn_id=turn.turn_id
        )
    with pytest.raises(NotFoundError, match="turn"):
        client.agents.turn.retrieve(turn_id="nope", agent_id=agent_id, session_id=session_id)


def test_streamed_turn_events(stack: AgentsStack) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client)
    chunks = list(
        client.agents.turn.create(
            agent_id=agent_id, session_id=session_id, messages=[user("one two three")], stream=True
        )
    )
    kinds = [c.event.payload.event_type for c in chunks]
    assert kinds[0] == "turn_start" and kinds[1] == "step_start"
    assert kinds[-2] == "step_complete" and kinds[-1] == "turn_complete"
    assert set(kinds[2:-2]) == {"step_progress"}
    text = "".join(
        c.event.payload.delta.text for c in chunks if kinds[chunks.index(c)] == "step_progress"
    )
    turn = chunks[-1].event.payload.turn
    assert text == turn.output_message.content == "echo: one two three"
    assert chunks[0].event.payload.turn_id == turn.turn_id
    assert chunks[-2].event.payload.step_details.step_id == turn.steps[0].step_id


def test_session_history_goes_to_the_model(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client)
    for text in ("first", "second"):
        client.agents.turn.create(
            agent_id=agent_id, session_id=session_id, messages=[user(text)], stream=False
        )
    sent = model.chats[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "You are helpful."),
        ("user", "first"),
        ("assistant", "echo: first"),
        ("user", "second"),
    ]
    session = client.agents.session.retrieve(session_id=session_id, agent_id=agent_id)
    assert [t.input_messages[0].content for t in session.turns] == ["first", "second"]
    only = client.agents.session.retrieve(
        session_id=session_id, agent_id=agent_id, turn_ids=[session.turns[1].turn_id]
    )
    assert [t.turn_id for t in only.turns] == [session.turns[1].turn_id]


def test_client_tool_with_the_agent_helper(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent = Agent(client, model=MODEL, instructions="Use tools.", tools=[get_weather])
    session_id = agent.create_session("weather")
    model.play(Reply(tool_calls=[("get_weather", {"city": "Paris"})]))

    chunks = list(agent.create_turn(messages=[user("weather in Paris?")], session_id=session_id))
    kinds = [c.event.payload.event_type for c in chunks]
    assert "turn_awaiting_input" in kinds and kinds[-1] == "turn_complete"
    final = chunks[-1].event.payload.turn
    assert final.output_message.content == 'tool said: "sunny in Paris"'

    first, second = model.chats
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    params = first["tools"][0]["function"]["parameters"]
    assert params["properties"]["city"]["type"] == "string" and params["required"] == ["city"]
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_weather"

    turn = client.agents.turn.retrieve(
        turn_id=final.turn_id, agent_id=agent.agent_id, session_id=session_id
    )
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    execution = turn.steps[1]
    assert execution.tool_calls[0].arguments == {"city": "Paris"}
    assert execution.tool_responses[0].content == '"sunny in Paris"'

    # Resuming a finished turn is refused; so are responses to calls it did not make.
    with pytest.raises(ConflictError):
        client.agents.turn.resume(
            turn_id=turn.turn_id, agent_id=agent.agent_id, session_id=session_id, tool_responses=[]
        )


def test_resume_needs_the_pending_calls(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(
        client,
        client_tools=[
            {
                "name": "get_weather",
                "description": "weather",
                "parameters": [
                    {
                        "name": "city",
                        "parameter_type": "string",
                        "description": "c",
                        "required": True,
                    }
                ],
            }
        ],
    )
    model.play(Reply(tool_calls=[("get_weather", {"city": "Rome"})]))
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("weather?")], stream=False
    )
    assert turn.completed_at is None
    assert turn.output_message.stop_reason == "end_of_message"
    call = turn.output_message.tool_calls[0]
    assert call.tool_name == "get_weather" and call.arguments == {"city": "Rome"}

    with pytest.raises(BadRequestError, match="missing"):
        client.agents.turn.resume(
            turn_id=turn.turn_id, agent_id=agent_id, session_id=session_id, tool_responses=[]
        )
    resumed = client.agents.turn.resume(
        turn_id=turn.turn_id,
        agent_id=agent_id,
        session_id=session_id,
        tool_responses=[{"call_id": call.call_id, "tool_name": "get_weather", "content": "rain"}],
        stream=False,
    )
    assert resumed.output_message.content == "tool said: rain"
    assert resumed.completed_at is not None
    assert [s.step_type for s in resumed.steps] == ["inference", "tool_execution", "inference"]


def test_server_tool_runs_in_the_tool_runtime(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client, toolgroups=["test::math"])
    model.play(Reply(tool_calls=[("add", {"a": 2, "b": 40})]))
    chunks = list(
        client.agents.turn.create(
            agent_id=agent_id, session_id=session_id, messages=[user("2+40?")], stream=True
        )
    )
    kinds = [c.event.payload.event_type for c in chunks]
    assert "turn_awaiting_input" not in kinds
    turn = chunks[-1].event.payload.turn
    assert turn.output_message.content == "tool said: 42"
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    assert stack.tools is not None
    assert stack.tools.invocations[-1].kwargs == {"a": 2, "b": 40}
    tool_deltas = [
        c.event.payload.delta
        for c in chunks
        if c.event.payload.event_type == "step_progress"
        and c.event.payload.delta.type == "tool_call"
    ]
    assert tool_deltas[0].parse_status == "succeeded"
    assert tool_deltas[0].tool_call.tool_name == "add"


def test_rag_turn_with_the_agent_helper(stack: AgentsStack, model: ScriptedModel) -> None:
    import asyncio

    from stackray.api.vector_io import Chunk, InsertChunksRequest, RegisterVectorDbRequest

    assert stack.vector_io is not None and stack.tools is not None
    asyncio.run(
        stack.vector_io.register_vector_db(
            RegisterVectorDbRequest(vector_db_id="kb", embedding_model="embed")
        )
    )
    asyncio.run(
        stack.vector_io.insert_chunks(
            InsertChunksRequest(
                vector_db_id="kb",
                chunks=[
                    Chunk(content="The vault code is 4242.", metadata={"document_id": "a"}),
                    Chunk(content="Bananas are yellow.", metadata={"document_id": "b"}),
                ],
            )
        )
    )
    client = stack.client()
    agent = Agent(
        client,
        model=MODEL,
        instructions="Answer from the knowledge base.",
        tools=[{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": ["kb"]}}],
    )
    session_id = agent.create_session("rag")
    model.play(Reply(tool_calls=[("knowledge_search", {"query": "vault code"})]))
    turn = agent.create_turn(
        messages=[user("What is the vault code?")], session_id=session_id, stream=False
    )
    assert "4242" in turn.output_message.content
    assert "Bananas" not in turn.output_message.content
    invocation = stack.tools.invocations[-1]
    assert invocation.tool_name == "knowledge_search"
    assert invocation.kwargs == {"query": "vault code", "vector_db_ids": ["kb"]}
    execution = turn.steps[1]
    assert execution.step_type == "tool_execution"
    assert execution.tool_responses[0].metadata == {"document_count": 1}


def test_documents_are_searchable_by_the_rag_tool(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client, toolgroups=["builtin::rag"])
    model.play(Reply(tool_calls=[("knowledge_search", {"query": "launch date"})]))
    turn = client.agents.turn.create(
        agent_id=agent_id,
        session_id=session_id,
        messages=[user("When is the launch?")],
        documents=[
            {"content": "The launch date is March 3rd.", "mime_type": "text/plain"},
            {
                "content": {"uri": "data:text/plain;base64,UGVuZ3VpbnMgbGl2ZSBpbiB0aGUgc291dGgu"},
                "mime_type": "text/plain",
            },
        ],
        stream=False,
    )
    assert "March 3rd" in turn.output_message.content
    assert stack.tools is not None and stack.vector_io is not None
    db = f"session-{session_id}"
    assert stack.tools.invocations[-1].kwargs["vector_db_ids"] == [db]
    assert stack.vector_io.dbs[db].embedding_model == "embed"
    texts = sorted(c.content for c in stack.vector_io.chunks[db].values())
    assert texts == ["Penguins live in the south.", "The launch date is March 3rd."]


def test_documents_without_rag_tool_are_retrieved_as_memory(
    stack: AgentsStack, model: ScriptedModel
) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client)
    client.agents.turn.create(
        agent_id=agent_id,
        session_id=session_id,
        messages=[user("remember this")],
        documents=[{"content": "The wifi password is hunter2.", "mime_type": "text/plain"}],
        stream=False,
    )
    turn = client.agents.turn.create(
        agent_id=agent_id,
        session_id=session_id,
        messages=[user("what is the wifi password?")],
        stream=False,
    )
    assert [s.step_type for s in turn.steps] == ["memory_retrieval", "inference"]
    memory = turn.steps[0]
    assert memory.vector_db_ids == f"session-{session_id}"
    assert "hunter2" in memory.inserted_context
    assert "hunter2" in model.chats[-1]["messages"][-1]["content"]


def test_documents_need_vector_io(make_stack: Callable[..., AgentsStack]) -> None:
    client = make_stack(standins=False).client()
    agent_id, session_id = new_session(client)
    with pytest.raises(BadRequestError, match="vector_io API"):
        client.agents.turn.create(
            agent_id=agent_id,
            session_id=session_id,
            messages=[user("x")],
            documents=[{"content": "doc", "mime_type": "text/plain"}],
            stream=False,
        )


def test_input_shield_stops_the_turn(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent = Agent(client, model=MODEL, instructions="x", input_shields=["banned-words"])
    session_id = agent.create_session("s")
    turn = agent.create_turn(
        messages=[user("tell me the forbidden thing")], session_id=session_id, stream=False
    )
    assert turn.output_message.content == REFUSAL
    assert [s.step_type for s in turn.steps] == ["shield_call"]
    assert turn.steps[0].violation.violation_level == "error"
    assert model.chats == []  # the model never saw it

    ok = agent.create_turn(messages=[user("hello")], session_id=session_id, stream=False)
    assert ok.output_message.content == "echo: hello"
    assert [s.step_type for s in ok.steps] == ["shield_call", "inference"]
    assert ok.steps[0].violation is None
    # The refused turn is remembered as refused.
    assert [m["content"] for m in model.chats[-1]["messages"][1:]] == [
        "tell me the forbidden thing",
        REFUSAL,
        "hello",
    ]


def test_output_shield_replaces_the_answer(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client, output_shields=["banned-words", "cautious"])
    model.play(Reply("here is the forbidden answer"))
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("hi")], stream=False
    )
    assert turn.output_message.content == REFUSAL
    assert [s.step_type for s in turn.steps] == ["inference", "shield_call"]
    assert turn.steps[0].api_model_response.content == "here is the forbidden answer"
    # A warning does not stop the turn.
    agent_id, session_id = new_session(client, output_shields=["cautious"])
    model.play(Reply("a forbidden word, mildly"))
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("hi")], stream=False
    )
    assert turn.output_message.content == "a forbidden word, mildly"
    assert turn.steps[1].violation.violation_level == "warn"


def test_tool_config_sampling_and_response_format_pass_through(
    stack: AgentsStack, model: ScriptedModel
) -> None:
    client = stack.client()
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    agent_id, session_id = new_session(
        client,
        toolgroups=["test::math"],
        tool_config={"tool_choice": "required"},
        sampling_params={
            "strategy": {"type": "top_p", "temperature": 0.5, "top_p": 0.9},
            "max_tokens": 33,
        },
        response_format={"type": "json_schema", "json_schema": schema},
    )
    model.play(Reply(tool_calls=[("add", {"a": 1, "b": 1})]), Reply('{"x": 2}'))
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("1+1")], stream=False
    )
    assert turn.output_message.content == '{"x": 2}'
    first, second = model.chats
    assert first["tool_choice"] == "required"
    assert second["tool_choice"] == "auto"  # a required call is made once
    assert first["temperature"] == 0.5 and first["top_p"] == 0.9 and first["max_tokens"] == 33
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"] == schema

    # A turn's tool_config overrides the agent's; a tool named as the choice is forced.
    model.play(Reply(tool_calls=[("add", {"a": 2, "b": 2})]))
    client.agents.turn.create(
        agent_id=agent_id,
        session_id=session_id,
        messages=[user("2+2")],
        tool_config={"tool_choice": "add"},
        stream=False,
    )
    assert model.chats[2]["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert model.chats[3]["tool_choice"] == "auto"  # a named tool is forced once too
    with pytest.raises(BadRequestError, match="tool_choice 'nope'"):
        client.agents.turn.create(
            agent_id=agent_id,
            session_id=session_id,
            messages=[user("x")],
            tool_config={"tool_choice": "nope"},
            stream=False,
        )


def test_turn_toolgroups_add_to_the_agents(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client)
    model.play(Reply(tool_calls=[("add", {"a": 3, "b": 4})]))
    turn = client.agents.turn.create(
        agent_id=agent_id,
        session_id=session_id,
        messages=[user("3+4")],
        toolgroups=["test::math"],
        stream=False,
    )
    assert turn.output_message.content == "tool said: 7"
    assert [t["function"]["name"] for t in model.chats[0]["tools"]] == ["add"]


def test_max_infer_iters_ends_the_turn(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client, toolgroups=["test::math"], max_infer_iters=2)
    model.play(*[Reply(tool_calls=[("add", {"a": i, "b": 1})]) for i in range(5)])
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("loop")], stream=False
    )
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    assert len(model.chats) == 2
    assert turn.output_message.stop_reason == "end_of_turn"
    assert turn.completed_at is not None
    # The next turn's history holds no unanswered tool call (OpenAI would refuse it).
    model.script.clear()
    client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("next")], stream=False
    )
    history = model.chats[-1]["messages"]
    calls = [c["id"] for m in history for c in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in history if m["role"] == "tool"]
    assert calls == answered and len(calls) == 1


def test_unknown_tool_called_by_the_model(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent_id, session_id = new_session(client, toolgroups=["test::math"])
    model.play(Reply(tool_calls=[("launch_rockets", {})]))
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("go")], stream=False
    )
    assert turn.steps[1].tool_responses[0].content == "error: unknown tool 'launch_rockets'"
    assert turn.output_message.content == "tool said: error: unknown tool 'launch_rockets'"


def test_long_session_is_truncated(
    make_stack: Callable[..., AgentsStack], model: ScriptedModel
) -> None:
    stack = make_stack(agents_config={"context_window": 300, "reserved_output_tokens": 100})
    client = stack.client()
    agent_id, session_id = new_session(client)
    for i in range(6):
        client.agents.turn.create(
            agent_id=agent_id,
            session_id=session_id,
            messages=[user(f"turn {i} " + "word " * 40)],
            stream=False,
        )
    sent = model.chats[-1]["messages"]
    assert sent[0]["role"] == "system"
    assert sent[-1]["content"].startswith("turn 5 ")
    kept = [m["content"].split()[1] for m in sent if m["role"] == "user"]
    assert kept[-1] == "5" and len(kept) < 6
    assert kept == [str(i) for i in range(6 - len(kept), 6)]  # the latest turns, in order
    # Everything is still stored.
    session = client.agents.session.retrieve(session_id=session_id, agent_id=agent_id)
    assert len(session.turns) == 6


def test_inference_failure_is_reported(stack: AgentsStack, model: ScriptedModel) -> None:
    from tests.unit.support.remote_servers import Failure

    client = stack.client()
    agent_id, session_id = new_session(client)
    model.fail(*[Failure(status=400, body={"error": {"message": "bad prompt"}})] * 3)
    with pytest.raises(BadRequestError, match="bad prompt"):
        client.agents.turn.create(
            agent_id=agent_id, session_id=session_id, messages=[user("x")], stream=False
        )
    # Streamed, the failure arrives as an error event after turn_start.
    model.fail(*[Failure(status=400, body={"error": {"message": "bad prompt"}})] * 3)
    http = httpx.Client(base_url=stack.url)
    r = http.post(
        f"/v1/agents/{agent_id}/session/{session_id}/turn",
        json={"messages": [user("x")], "stream": True},
    )
    events = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert json.loads(events[0][6:])["event"]["payload"]["event_type"] == "turn_start"
    assert "bad prompt" in r.text and "event: error" in r.text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_session_survives_a_restart(
    backend: str,
    make_stack: Callable[..., AgentsStack],
    model: ScriptedModel,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    agents_config: dict[str, Any] = {}
    if backend == "postgres":
        pg = request.getfixturevalue("postgres_config")
        agents_config["persistence_store"] = pg.model_dump(mode="json")
        agents_config["persistence_store"]["password"] = pg.password
    first = make_stack(agents_config=agents_config)
    kind = "PostgreSQL" if backend == "postgres" else "SQLite"
    assert first.agents.store.turns.location.startswith(kind)
    client = first.client()
    agent_id, session_id = new_session(client, client_tools=[{"name": "get_weather"}])
    turn = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("before")], stream=False
    )
    model.play(Reply(tool_calls=[("get_weather", {})]))
    paused = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("paused")], stream=False
    )
    first.close()

    second = make_stack(agents_config=agents_config)
    client = second.client()
    session = client.agents.session.retrieve(session_id=session_id, agent_id=agent_id)
    assert [t.turn_id for t in session.turns] == [turn.turn_id, paused.turn_id]
    assert session.turns[0].output_message.content == "echo: before"
    # The paused turn resumes on the new stack.
    call_id = paused.output_message.tool_calls[0].call_id
    resumed = client.agents.turn.resume(
        agent_id=agent_id,
        session_id=session_id,
        turn_id=paused.turn_id,
        tool_responses=[{"call_id": call_id, "tool_name": "get_weather", "content": "cloudy"}],
        stream=False,
    )
    assert resumed.output_message.content == "tool said: cloudy"
    after = client.agents.turn.create(
        agent_id=agent_id, session_id=session_id, messages=[user("after")], stream=False
    )
    assert after.output_message.content == "echo: after"
    contents = [m.get("content") for m in model.chats[-1]["messages"]]
    assert contents[1:3] == ["before", "echo: before"] and contents[-1] == "after"
    client.agents.delete(agent_id)
