"""The OpenAI-compatible routes through the real `openai` SDK, under both prefixes."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from .conftest import EMBEDDING_MODEL, MODEL

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize("prefix", ["/v1/openai/v1", "/v1"])
def test_chat_completions(stack, prefix):
    client = stack.openai(prefix)
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0, max_tokens=16)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens > 0
    assert r.model == MODEL


def test_chat_completions_stream_matches_non_stream(stack):
    client = stack.openai()
    full = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0, max_tokens=16
    )
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [full.choices[0].finish_reason]
    assert (
        chunks[-1].usage is not None
        and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    )


def test_stored_chat_completions_list_and_get(stack):
    client = stack.openai()
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0, max_tokens=4)
    got = client.chat.completions.retrieve(r.id)
    assert got.id == r.id and got.choices[0].message.content == r.choices[0].message.content
    http = stack.http()
    body = http.get("/v1/openai/v1/chat/completions", params={"limit": 50, "model": MODEL}).json()
    ids = [c["id"] for c in body["data"]]
    assert r.id in ids
    stored = next(c for c in body["data"] if c["id"] == r.id)
    assert stored["input_messages"][0]["content"] == MESSAGES[0]["content"]
    missing = http.get("/v1/openai/v1/chat/completions/chatcmpl-nope")
    assert missing.status_code == 404


def test_json_schema_response_format(stack):
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "maxLength": 30},
            "confident": {"type": "boolean"},
        },
        "required": ["answer", "confident"],
        "additionalProperties": False,
    }
    r = stack.openai().chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=0,
        max_tokens=64,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema},
        },
    )
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_tool_calls(stack):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather of a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    client = stack.openai()
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=48,
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice="required",
        temperature=0,
        max_tokens=48,
        stream=True,
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    streamed = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert streamed and streamed[0].function.name == "get_weather"


def test_logprobs(stack):
    r = stack.openai().chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0, max_tokens=4, logprobs=True, top_logprobs=2
    )
    content = r.choices[0].logprobs.content
    assert len(content) == 4 and all(len(t.top_logprobs) <= 2 for t in content)


def test_completions(stack):
    client = stack.openai("/v1")
    r = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=5, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text
    chunks = list(
        client.completions.create(
            model=MODEL, prompt="The sky is", max_tokens=5, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == r.choices[0].text


def test_embeddings_float_and_base64(stack):
    client = stack.openai("/v1")
    r = client.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"], encoding_format="float")
    assert len(r.data) == 2 and len(r.data[0].embedding) == 384
    # The SDK asks for base64 by default and decodes it itself.
    r64 = client.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"])
    assert r64.data[0].embedding == pytest.approx(r.data[0].embedding, abs=1e-6)
    assert r.usage.prompt_tokens > 0


def test_models_list(stack):
    ids = {m.id for m in stack.openai().models.list()}
    assert {MODEL, EMBEDDING_MODEL} <= ids
    ids_v1 = {m.id for m in stack.openai("/v1").models.list()}
    assert {MODEL, EMBEDDING_MODEL} <= ids_v1


def test_unknown_model_404(stack):
    with pytest.raises(openai.NotFoundError):
        stack.openai().chat.completions.create(model="nope", messages=MESSAGES)


def test_bad_request_names_field(stack):
    with pytest.raises(openai.BadRequestError) as err:
        stack.openai().chat.completions.create(model=MODEL, messages=MESSAGES, n=3)
    assert err.value.body["param"] == "n" or "n" in str(err.value)
