"""The agents API on the stack's real routers, in one process: `build_local_stack` builds
inference (the scripted tool-calling model behind `remote::vllm`, and the real
all-MiniLM-L6-v2 embeddings with `inline::sentence-transformers`), vector IO (faiss),
safety (`inline::code-scanner`), tool runtime (`builtin::rag` and MCP) and agents; the
gateway serves them on 127.0.0.1 to the real `llama_stack_client` and its `Agent` helper.
MCP tools come from a real MCP server on loopback (`tests.mcp_server`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_stack_client import NotFoundError
from llama_stack_client.lib.agents.agent import Agent

from tests.mcp_server import MCPTestServer
from tests.unit.support.agents_harness import (
    CODE_SHIELD,
    MODEL,
    REAL_EMBEDDING_MODEL,
    AgentsStack,
    start_real_stack,
)
from tests.unit.support.scripted_model import Reply, ScriptedModel

VAULT = "The vault code is 4242 and it opens the blue door."
BANANAS = "Bananas are yellow fruit grown in tropical countries."
LAUNCH = "The rocket launch date is March 3rd at the northern spaceport."
PENGUINS = "Penguins live in the southern hemisphere and cannot fly."
# C's gets() is a CodeShield rule of severity error: the code-scanner blocks it.
UNSAFE_C = "Why does this crash?\n```c\nchar line[8];\ngets(line);\n```"


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

    def make() -> AgentsStack:
        stack = start_real_stack(model, tmp_path)
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.close()


@pytest.fixture()
def stack(make_stack: Callable[..., AgentsStack]) -> AgentsStack:
    return make_stack()


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(getattr(p, "text", None) or p.get("text", "") for p in content)
    return str(content)


def fill_knowledge_base(client: Any) -> None:
    """Vector db `kb` (faiss, all-MiniLM-L6-v2) filled through the RAG tool's insert."""
    client.vector_dbs.register(
        vector_db_id="kb", embedding_model=REAL_EMBEDDING_MODEL, provider_id="faiss"
    )
    client.tool_runtime.rag_tool.insert(
        vector_db_id="kb",
        chunk_size_in_tokens=64,
        documents=[
            {"document_id": "vault", "content": VAULT, "mime_type": "text/plain"},
            {"document_id": "bananas", "content": BANANAS, "mime_type": "text/plain"},
        ],
    )


def test_rag_turn_over_a_vector_db_filled_by_the_rag_tool(
    stack: AgentsStack, model: ScriptedModel
) -> None:
    client = stack.client()
    fill_knowledge_base(client)
    agent = Agent(
        client,
        model=MODEL,
        instructions="Answer from the knowledge base.",
        tools=[
            {
                "name": "builtin::rag/knowledge_search",
                "args": {"vector_db_ids": ["kb"], "query_config": {"max_chunks": 1}},
            }
        ],
    )
    # The helper listed the named tool at GET /v1/tools?toolgroup_id=<group>/<tool>.
    http = httpx.Client(base_url=stack.url)
    tools = http.get("/v1/tools", params={"toolgroup_id": "builtin::rag/knowledge_search"})
    assert [t["identifier"] for t in tools.json()["data"]] == ["knowledge_search"]
    r = http.get("/v1/tools", params={"toolgroup_id": "builtin::rag/nope"})
    assert r.status_code == 404 and "'nope'" in r.json()["error"]["message"]
    session_id = agent.create_session("rag")
    model.play(Reply(tool_calls=[("knowledge_search", {"query": "what opens the vault door?"})]))
    turn = agent.create_turn(
        messages=[user("What is the vault code?")], session_id=session_id, stream=False
    )
    # The model offered knowledge_search, called it, and answered from its result.
    assert [t["function"]["name"] for t in model.chats[0]["tools"]] == ["knowledge_search"]
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    assert "4242" in turn.output_message.content
    assert "Bananas" not in turn.output_message.content
    [response] = turn.steps[1].tool_responses
    assert response.tool_name == "knowledge_search"
    assert "BEGIN of knowledge_search tool results" in text_of(response.content)
    assert response.metadata["document_ids"] == ["vault"]
    assert response.metadata["chunks"] == [VAULT]
    # What the model saw as the tool's result.
    tool_message = model.chats[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "4242" in text_of(tool_message["content"])


def test_documents_go_to_the_session_vector_db(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent = Agent(client, model=MODEL, instructions="x", tools=["builtin::rag"])
    session_id = agent.create_session("docs")
    model.play(Reply(tool_calls=[("knowledge_search", {"query": "when is the rocket launch?"})]))
    turn = agent.create_turn(
        messages=[user("When is the launch?")],
        session_id=session_id,
        documents=[
            {"content": LAUNCH, "mime_type": "text/plain"},
            {
                "content": {"uri": "data:text/plain;charset=utf-8," + PENGUINS.replace(" ", "%20")},
                "mime_type": "text/plain",
            },
        ],
        stream=False,
    )
    db = f"session-{session_id}"
    listed = client.vector_dbs.retrieve(vector_db_id=db)
    assert listed.embedding_model == REAL_EMBEDDING_MODEL and listed.provider_id == "faiss"
    assert "March 3rd" in turn.output_message.content
    [response] = turn.steps[1].tool_responses
    # The best match first, found by meaning in the session's own vector db.
    assert response.metadata["chunks"][0] == LAUNCH
    found = client.vector_io.query(vector_db_id=db, query="flightless birds")
    assert PENGUINS in [c.content for c in found.chunks][:1]

    # Deleting the session unregisters its vector db.
    client.agents.session.delete(session_id=session_id, agent_id=agent.agent_id)
    with pytest.raises(NotFoundError):
        client.vector_dbs.retrieve(vector_db_id=db)


def test_documents_without_the_rag_tool_are_memory(
    stack: AgentsStack, model: ScriptedModel
) -> None:
    client = stack.client()
    agent = Agent(client, model=MODEL, instructions="x")
    session_id = agent.create_session("memory")
    agent.create_turn(
        messages=[user("remember this")],
        session_id=session_id,
        documents=[{"content": "The wifi password is hunter2.", "mime_type": "text/plain"}],
        stream=False,
    )
    turn = agent.create_turn(
        messages=[user("what is the wifi password?")], session_id=session_id, stream=False
    )
    assert [s.step_type for s in turn.steps] == ["memory_retrieval", "inference"]
    assert "hunter2" in turn.steps[0].inserted_context
    assert "hunter2" in text_of(model.chats[-1]["messages"][-1]["content"])


def test_mcp_tool_turn(stack: AgentsStack, model: ScriptedModel, mcp_server: MCPTestServer) -> None:
    client = stack.client()
    client.toolgroups.register(
        toolgroup_id="mcp::test",
        provider_id="mcp",
        mcp_endpoint={"uri": mcp_server.http_url},
    )
    agent = Agent(client, model=MODEL, instructions="x", tools=["mcp::test"])
    session_id = agent.create_session("mcp")
    model.play(Reply(tool_calls=[("add", {"a": 19, "b": 23}), ("document", {"name": "notes"})]))
    turn = agent.create_turn(messages=[user("19+23?")], session_id=session_id, stream=False)
    offered = {t["function"]["name"] for t in model.chats[0]["tools"]}
    assert {"add", "echo", "document", "fail"} <= offered
    assert [s.step_type for s in turn.steps] == ["inference", "tool_execution", "inference"]
    add, document = turn.steps[1].tool_responses
    assert text_of(add.content) == "42"
    assert "contents of notes" in text_of(document.content)
    assert turn.output_message.content.startswith("tool said: ")
    # The tool results went back to the model, one tool message per call.
    tool_messages = [m for m in model.chats[1]["messages"] if m["role"] == "tool"]
    assert [text_of(m["content"]) for m in tool_messages][0] == "42"

    # An image result (content items) is the tool response as is; the model gets it too.
    model.play(Reply(tool_calls=[("picture", {})]))
    pictured = agent.create_turn(messages=[user("draw")], session_id=session_id, stream=False)
    [image] = pictured.steps[1].tool_responses[0].content
    assert image.type == "image"
    tool_message = model.chats[-1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert pictured.output_message.content.startswith("tool said")

    # A tool error is the tool's answer, and the turn goes on.
    model.play(Reply(tool_calls=[("fail", {"message": "disk on fire"})]))
    failed = agent.create_turn(messages=[user("break")], session_id=session_id, stream=False)
    assert "disk on fire" in text_of(failed.steps[1].tool_responses[0].content)
    assert failed.output_message.content.startswith("tool said: ")


def test_unknown_shields_are_refused_when_the_agent_is_made(stack: AgentsStack) -> None:
    http = httpx.Client(base_url=stack.client().base_url)

    def create(**config: Any) -> httpx.Response:
        body = {"model": MODEL, "instructions": "x", **config}
        return http.post("/v1/agents", json={"agent_config": body})

    r = create(input_shields=["nope"])
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "agent_config.input_shields[0]"
    assert "shield 'nope' not found" in r.json()["error"]["message"]
    r = create(input_shields=[CODE_SHIELD], output_shields=[CODE_SHIELD, "ghost"])
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "agent_config.output_shields[1]"
    assert "ghost" in r.json()["error"]["message"]
    assert create(input_shields=[CODE_SHIELD], output_shields=[CODE_SHIELD]).status_code == 200


def test_code_scanner_input_shield_stops_the_turn(stack: AgentsStack, model: ScriptedModel) -> None:
    client = stack.client()
    agent = Agent(client, model=MODEL, instructions="x", input_shields=[CODE_SHIELD])
    session_id = agent.create_session("shield")
    turn = agent.create_turn(messages=[user(UNSAFE_C)], session_id=session_id, stream=False)
    [shield] = turn.steps
    assert shield.step_type == "shield_call"
    assert shield.violation.violation_level == "error"
    assert shield.violation.metadata["patterns"] == ["bugprone-gets"]
    assert turn.output_message.content == shield.violation.user_message
    assert "gets" in turn.output_message.content
    assert model.chats == []  # the model never saw it

    # Code with only warnings (MD5) passes a warn, and the turn goes on.
    md5 = "```python\nimport hashlib\nhashlib.md5(data).hexdigest()\n```"
    warned = agent.create_turn(messages=[user(md5)], session_id=session_id, stream=False)
    assert [s.step_type for s in warned.steps] == ["shield_call", "inference"]
    assert warned.steps[0].violation.violation_level == "warn"
    assert warned.output_message.content.startswith("echo: ")


def test_streamed_turn(stack: AgentsStack, model: ScriptedModel, mcp_server: MCPTestServer) -> None:
    client = stack.client()
    client.toolgroups.register(
        toolgroup_id="mcp::stream", provider_id="mcp", mcp_endpoint={"uri": mcp_server.sse_url}
    )
    agent = Agent(
        client, model=MODEL, instructions="x", tools=["mcp::stream"], input_shields=[CODE_SHIELD]
    )
    session_id = agent.create_session("stream")
    model.play(Reply(text="let me echo", tool_calls=[("echo", {"text": "hi", "times": 2})]))
    chunks = list(
        agent.create_turn(messages=[user("echo hi twice")], session_id=session_id, stream=True)
    )
    events = [
        (c.event.payload.event_type, getattr(c.event.payload, "step_type", None)) for c in chunks
    ]
    assert events[0] == ("turn_start", None)
    assert events[-1] == ("turn_complete", None)
    completed = [step for kind, step in events if kind == "step_complete"]
    assert completed == ["shield_call", "inference", "tool_execution", "inference"]
    text = "".join(
        c.event.payload.delta.text
        for c in chunks
        if c.event.payload.event_type == "step_progress" and c.event.payload.delta.type == "text"
    )
    assert text == "let me echo" + "tool said: hi hi"
    turn = chunks[-1].event.payload.turn
    assert turn.output_message.content == "tool said: hi hi"
    assert text_of(turn.steps[2].tool_responses[0].content) == "hi hi"


def test_session_read_back_after_a_restart(
    make_stack: Callable[..., AgentsStack], model: ScriptedModel, mcp_server: MCPTestServer
) -> None:
    first = make_stack()
    client = first.client()
    client.toolgroups.register(
        toolgroup_id="mcp::kept", provider_id="mcp", mcp_endpoint={"uri": mcp_server.http_url}
    )
    agent = Agent(client, model=MODEL, instructions="x", tools=["builtin::rag", "mcp::kept"])
    session_id = agent.create_session("kept")
    model.play(Reply(tool_calls=[("add", {"a": 1, "b": 2})]))
    before = agent.create_turn(
        messages=[user("1+2?")],
        session_id=session_id,
        documents=[{"content": LAUNCH, "mime_type": "text/plain"}],
        stream=False,
    )
    first.close()

    second = make_stack()
    client = second.client()
    session = client.agents.session.retrieve(session_id=session_id, agent_id=agent.agent_id)
    assert [t.turn_id for t in session.turns] == [before.turn_id]
    assert session.turns[0].output_message.content == "tool said: 3"
    assert [s.step_type for s in session.turns[0].steps] == [
        "inference",
        "tool_execution",
        "inference",
    ]
    # The registered MCP group, the session's vector db and its documents came back too.
    model.play(
        Reply(
            tool_calls=[("knowledge_search", {"query": "rocket launch"}), ("add", {"a": 2, "b": 2})]
        )
    )
    after = client.agents.turn.create(
        agent_id=agent.agent_id, session_id=session_id, messages=[user("again")], stream=False
    )
    search, add = after.steps[1].tool_responses
    assert search.metadata["chunks"] == [LAUNCH]
    assert text_of(add.content) == "4"
    # The first turn is in the history the model got.
    contents = [text_of(m.get("content")) for m in model.chats[-1]["messages"]]
    assert "1+2?" in contents and "tool said: 3" in contents

    http = httpx.Client(base_url=second.url)
    assert http.delete(f"/v1/agents/{agent.agent_id}").status_code == 200
    with pytest.raises(NotFoundError):
        client.vector_dbs.retrieve(vector_db_id=f"session-{session_id}")
