"""Agents through the shared Serve stack: the gateway, the agents deployment and the
inference deployment, each its own Serve deployment, driven by the real `Agent` helper."""

from __future__ import annotations

from llama_stack_client.lib.agents.agent import Agent

from .conftest import MODEL

USER = {"role": "user", "content": "hello agents"}


def test_agent_turn_with_the_echo_model(stack):
    client = stack.client()
    agent = Agent(client, model="echo-model", instructions="Repeat after me.")
    session_id = agent.create_session("integration")

    chunks = list(agent.create_turn(messages=[USER], session_id=session_id, stream=True))
    kinds = [c.event.payload.event_type for c in chunks]
    assert kinds[0] == "turn_start" and kinds[-1] == "turn_complete"
    streamed = "".join(
        c.event.payload.delta.text
        for c in chunks
        if c.event.payload.event_type == "step_progress" and c.event.payload.delta.type == "text"
    )
    turn = chunks[-1].event.payload.turn
    # (The echo provider streams each word with a space after it.)
    assert turn.output_message.content == streamed
    assert streamed.strip() == "echo: hello agents"

    second = agent.create_turn(
        messages=[{"role": "user", "content": "again"}], session_id=session_id, stream=False
    )
    assert second.output_message.content.strip() == "echo: again"

    # Stored by the agents deployment: read back through the gateway.
    session = client.agents.session.retrieve(session_id=session_id, agent_id=agent.agent_id)
    assert [t.turn_id for t in session.turns] == [turn.turn_id, second.turn_id]
    step = client.agents.steps.retrieve(
        agent_id=agent.agent_id,
        session_id=session_id,
        turn_id=turn.turn_id,
        step_id=turn.steps[0].step_id,
    )
    assert step.step.step_type == "inference"
    http = stack.http()
    assert http.get(f"/v1/agents/{agent.agent_id}").json()["agent_config"]["model"] == "echo-model"
    client.agents.delete(agent.agent_id)
    assert http.get(f"/v1/agents/{agent.agent_id}").status_code == 404


def test_openai_responses_through_serve(stack):
    client = stack.openai()
    first = client.responses.create(model="echo-model", input="first words")
    assert first.output_text.strip() == "echo: first words"
    events = list(
        client.responses.create(
            model="echo-model", input="second", previous_response_id=first.id, stream=True
        )
    )
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text.strip() == "echo: second"
    items = client.responses.input_items.list(events[-1].response.id, order="asc")
    assert [getattr(i, "role", None) for i in items.data] == ["user", "assistant", "user"]
    assert stack.openai("/v1").responses.retrieve(first.id).id == first.id


def test_agent_turn_with_the_local_model(stack):
    client = stack.client()
    agent = Agent(
        client,
        model=MODEL,
        instructions="You are a helpful assistant.",
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 12},
    )
    session_id = agent.create_session("local-model")
    turn = agent.create_turn(
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        session_id=session_id,
        stream=False,
    )
    assert isinstance(turn.output_message.content, str) and turn.output_message.content.strip()
    assert turn.output_message.stop_reason in ("end_of_turn", "out_of_tokens")
    assert [s.step_type for s in turn.steps] == ["inference"]


KB_TEXT = "The lighthouse keeper's password is amber-falcon-17."


def test_rag_turn_over_a_vector_db_filled_by_the_rag_tool(stack):
    """`builtin::rag` across the agents, tool_runtime, vector_io (faiss) and inference
    deployments. The echo model never calls tools, so the local model is forced to call
    knowledge_search (tool_choice naming it: constrained decoding); the vector db holds
    one document, so whatever query the model writes, the search returns that document."""
    from llama_stack_client import LlamaStackClient

    # Two inferences of the 135M model on CPU (the forced call is ~40 tokens): a long timeout.
    client = LlamaStackClient(base_url=stack.base_url, timeout=600, max_retries=0)
    client.vector_dbs.register(
        vector_db_id="agents-kb", embedding_model="all-MiniLM-L6-v2", provider_id="faiss"
    )
    client.tool_runtime.rag_tool.insert(
        vector_db_id="agents-kb",
        chunk_size_in_tokens=128,
        documents=[{"document_id": "keeper", "content": KB_TEXT, "mime_type": "text/plain"}],
    )
    agent = Agent(
        client,
        model=MODEL,
        instructions="Answer from the knowledge base.",
        tools=[{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": ["agents-kb"]}}],
        tool_config={"tool_choice": "knowledge_search"},
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 96},
        max_infer_iters=2,
    )
    session_id = agent.create_session("rag")
    turn = agent.create_turn(
        messages=[{"role": "user", "content": "What is the lighthouse keeper's password?"}],
        session_id=session_id,
        stream=False,
    )
    kinds = [s.step_type for s in turn.steps]
    assert kinds[:3] == ["inference", "tool_execution", "inference"]
    [call] = turn.steps[0].api_model_response.tool_calls
    assert call.tool_name == "knowledge_search"
    execution = turn.steps[1]
    assert execution.tool_calls[0].call_id == call.call_id
    [response] = execution.tool_responses
    assert response.tool_name == "knowledge_search"
    assert response.metadata["document_ids"] == ["keeper"]
    assert response.metadata["chunks"] == [KB_TEXT]
    assert any("amber-falcon-17" in getattr(c, "text", "") for c in response.content)
    # The recorded step reads back from the agents deployment.
    step = client.agents.steps.retrieve(
        agent_id=agent.agent_id,
        session_id=session_id,
        turn_id=turn.turn_id,
        step_id=execution.step_id,
    )
    assert step.step.tool_responses[0].metadata["document_ids"] == ["keeper"]
    client.agents.delete(agent.agent_id)
    client.vector_dbs.unregister("agents-kb")


def test_turn_stopped_by_the_code_scanner_input_shield(stack):
    client = stack.client()
    agent = Agent(client, model="echo-model", instructions="x", input_shields=["code-scanner"])
    session_id = agent.create_session("shield")
    unsafe = "Why does this crash?\n```c\nchar line[8];\ngets(line);\n```"
    turn = agent.create_turn(
        messages=[{"role": "user", "content": unsafe}], session_id=session_id, stream=False
    )
    [shield] = turn.steps
    assert shield.step_type == "shield_call"
    assert shield.violation.violation_level == "error"
    assert shield.violation.metadata["patterns"] == ["bugprone-gets"]
    assert turn.output_message.content == shield.violation.user_message
    ok = agent.create_turn(
        messages=[{"role": "user", "content": "hello"}], session_id=session_id, stream=False
    )
    assert [s.step_type for s in ok.steps] == ["shield_call", "inference"]
    assert ok.steps[0].violation is None and ok.output_message.content.strip() == "echo: hello"
    client.agents.delete(agent.agent_id)
