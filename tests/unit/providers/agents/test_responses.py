"""The OpenAI Responses API through the real `openai` SDK over HTTP: the agents router in
one process, `remote::vllm` in front of the scripted model; file_search over the vector IO
stand-in (see `agents_harness`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from stackray.api.vector_io import Chunk, InsertChunksRequest, RegisterVectorDbRequest
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
def stack(model: ScriptedModel, tmp_path: Path) -> Iterator[AgentsStack]:
    stack = start_stack(model, tmp_path)
    yield stack
    stack.close()


@pytest.fixture(params=["/v1/openai/v1", "/v1"])
def client(stack: AgentsStack, request: pytest.FixtureRequest) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + request.param, api_key="unused", max_retries=0)


def test_text_response_is_stored(client: openai.OpenAI, stack: AgentsStack, model: ScriptedModel):
    r = client.responses.create(model=MODEL, input="hello", instructions="Be kind.")
    assert r.output_text == "echo: hello"
    assert r.status == "completed" and r.id.startswith("resp_")
    assert model.chats[-1]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hello"},
    ]
    got = client.responses.retrieve(r.id)
    assert got.output_text == "echo: hello" and got.id == r.id
    listing = httpx.get(f"{stack.url}/v1/openai/v1/responses").json()
    assert [x["id"] for x in listing["data"]] == [r.id]
    assert listing["data"][0]["input"][0]["content"] == "hello"
    assert listing["object"] == "list" and listing["first_id"] == r.id

    unstored = client.responses.create(model=MODEL, input="secret", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_previous_response_id_chains_the_conversation(
    client: openai.OpenAI, model: ScriptedModel
) -> None:
    first = client.responses.create(model=MODEL, input="my name is Ada")
    second = client.responses.create(
        model=MODEL, input="what is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert [(m["role"], m["content"]) for m in model.chats[-1]["messages"]] == [
        ("user", "my name is Ada"),
        ("assistant", "echo: my name is Ada"),
        ("user", "what is my name?"),
    ]
    items = client.responses.input_items.list(second.id, order="asc")
    kinds = [(i.type, getattr(i, "role", None)) for i in items.data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]
    desc = client.responses.input_items.list(second.id, limit=1)
    assert [i.id for i in desc.data] == [items.data[-1].id]
    after = client.responses.input_items.list(second.id, order="asc", after=items.data[0].id)
    assert [i.id for i in after.data] == [i.id for i in items.data[1:]]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")


def test_function_tool_round_trip(client: openai.OpenAI, model: ScriptedModel) -> None:
    tools: Any = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    model.play(Reply(tool_calls=[("get_weather", {"city": "Oslo"})]))
    r = client.responses.create(model=MODEL, input="weather in Oslo?", tools=tools)
    call = r.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    assert model.chats[-1]["tools"][0]["function"]["name"] == "get_weather"

    follow = client.responses.create(
        model=MODEL,
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "snow"}],
        tools=tools,
    )
    assert follow.output_text == "tool said: snow"
    sent = model.chats[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "snow"}


def test_file_search_runs_on_the_server(
    client: openai.OpenAI, stack: AgentsStack, model: ScriptedModel
) -> None:
    assert stack.vector_io is not None
    asyncio.run(
        stack.vector_io.register_vector_db(
            RegisterVectorDbRequest(vector_db_id="vs_1", embedding_model="embed")
        )
    )
    asyncio.run(
        stack.vector_io.insert_chunks(
            InsertChunksRequest(
                vector_db_id="vs_1",
                chunks=[
                    Chunk(content="Ravens can mimic speech.", metadata={"document_id": "f1"}),
                    Chunk(content="Tea grows on hills.", metadata={"document_id": "f2"}),
                ],
            )
        )
    )
    model.play(Reply(tool_calls=[("file_search", {"query": "ravens speech"})]))
    r = client.responses.create(
        model=MODEL,
        input="Can ravens talk?",
        tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}],
    )
    assert [o.type for o in r.output] == ["file_search_call", "message"]
    search = r.output[0]
    assert search.queries == ["ravens speech"]
    assert [x.text for x in search.results] == ["Ravens can mimic speech."]
    assert search.results[0].file_id == "f1"
    assert r.output_text == "tool said: [1] Ravens can mimic speech."


def test_streamed_response(client: openai.OpenAI, model: ScriptedModel) -> None:
    events = list(client.responses.create(model=MODEL, input="a b c", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.output_item.done" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: a b c"
    done = [e for e in events if e.type == "response.output_text.done"][0]
    assert done.text == text
    assert events[-1].response.output_text == text
    # (The contract numbers every event but response.created and response.completed.)
    numbers = [e.sequence_number for e in events[1:-1]]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)

    model.play(Reply(tool_calls=[("f", {"x": 1})]))
    events = list(
        client.responses.create(
            model=MODEL,
            input="call f",
            stream=True,
            tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        )
    )
    args = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(args[0].arguments) == {"x": 1}


def test_text_format_and_temperature_pass_through(client: openai.OpenAI, model: ScriptedModel):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    client.responses.create(
        model=MODEL,
        input="json please",
        temperature=0.25,
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema}},
    )
    sent = model.chats[-1]
    assert sent["temperature"] == 0.25
    assert sent["response_format"]["json_schema"]["schema"] == schema


def test_refused_tools_and_bad_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="web_search"):
        client.responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="x")
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_nope")


def test_max_output_tokens_is_honoured_and_usage_filled(
    client: openai.OpenAI, model: ScriptedModel
) -> None:
    long = " ".join(f"w{i}" for i in range(40))
    full = client.responses.create(model=MODEL, input=long)
    assert full.status == "completed" and full.incomplete_details is None
    assert full.usage is not None
    assert full.usage.output_tokens == 41  # "echo:" and the 40 words
    assert full.usage.input_tokens == 40
    assert full.usage.total_tokens == 81
    assert full.usage.input_tokens_details.cached_tokens == 0
    assert model.chats[-1]["stream_options"] == {"include_usage": True}

    cut = client.responses.create(model=MODEL, input=long, max_output_tokens=5)
    assert model.chats[-1]["max_tokens"] == 5
    assert cut.output_text == "echo: w0 w1 w2 w3"
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.max_output_tokens == 5 and cut.usage.output_tokens == 5
    assert client.responses.retrieve(cut.id).usage.output_tokens == 5

    events = list(
        client.responses.create(model=MODEL, input=long, max_output_tokens=3, stream=True)
    )
    final = events[-1].response
    assert final.status == "incomplete" and final.usage.output_tokens == 3
    assert final.output_text == "echo: w0 w1"


def test_max_output_tokens_bounds_every_step_together(
    client: openai.OpenAI, stack: AgentsStack, model: ScriptedModel
) -> None:
    # A file search step spends 1 token (its call) of 4: the answer may have 3.
    assert stack.vector_io is not None
    asyncio.run(
        stack.vector_io.register_vector_db(
            RegisterVectorDbRequest(vector_db_id="kb", embedding_model="embed")
        )
    )
    model.play(Reply(tool_calls=[("file_search", {"query": "x"})]))
    r = client.responses.create(
        model=MODEL,
        input="find it",
        max_output_tokens=4,
        tools=[{"type": "file_search", "vector_store_ids": ["kb"]}],
    )
    assert [c["max_tokens"] for c in model.chats[-2:]] == [4, 3]
    assert r.usage.output_tokens == 4 and r.status == "incomplete"


def test_top_p_passes_through_and_is_echoed(client: openai.OpenAI, model: ScriptedModel):
    r = client.responses.create(model=MODEL, input="x", top_p=0.5, temperature=0.7)
    assert model.chats[-1]["top_p"] == 0.5 and model.chats[-1]["temperature"] == 0.7
    assert r.top_p == 0.5 and r.temperature == 0.7


def test_unknown_and_out_of_range_fields_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="x", extra_body={"surprise": 1})
    assert e.value.body["param"] == "surprise"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="x", truncation="auto")
    assert e.value.body["param"] == "truncation"
    for field, value in (("max_output_tokens", 0), ("temperature", -1), ("top_p", 0)):
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model=MODEL, input="x", **{field: value})
        assert e.value.body["param"] == field
