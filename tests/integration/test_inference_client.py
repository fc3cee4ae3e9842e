"""Inference through the real llama-stack-client against the shared Serve stack."""

from __future__ import annotations

import json

import jsonschema
import pytest
from llama_stack_client import BadRequestError, NotFoundError

from .conftest import EMBEDDING_MODEL, MODEL

USER = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"strategy": {"type": "greedy"}, "max_tokens": 24}


def test_chat_completion(stack):
    r = stack.client().inference.chat_completion(
        model_id=MODEL, messages=USER, sampling_params=GREEDY
    )
    assert r.completion_message.role == "assistant"
    assert isinstance(r.completion_message.content, str) and r.completion_message.content.strip()
    assert r.completion_message.stop_reason in ("end_of_turn", "out_of_tokens")
    metrics = {m.metric: m.value for m in r.metrics}
    assert metrics["completion_tokens"] > 0 and metrics["prompt_tokens"] > 0


def test_greedy_is_deterministic(stack):
    client = stack.client()
    a = client.inference.chat_completion(model_id=MODEL, messages=USER, sampling_params=GREEDY)
    b = client.inference.chat_completion(model_id=MODEL, messages=USER, sampling_params=GREEDY)
    assert a.completion_message.content == b.completion_message.content


def test_chat_completion_stream(stack):
    chunks = list(
        stack.client().inference.chat_completion(
            model_id=MODEL, messages=USER, sampling_params=GREEDY, stream=True
        )
    )
    kinds = [c.event.event_type for c in chunks]
    assert kinds[0] == "start" and kinds[-1] == "complete"
    assert kinds.count("progress") >= 2
    text = "".join(c.event.delta.text for c in chunks if c.event.delta.type == "text")
    full = stack.client().inference.chat_completion(
        model_id=MODEL, messages=USER, sampling_params=GREEDY
    )
    assert text == full.completion_message.content
    assert chunks[-1].event.stop_reason in ("end_of_turn", "out_of_tokens")


def test_max_tokens_and_stop(stack):
    client = stack.client()
    r = client.inference.chat_completion(
        model_id=MODEL,
        messages=USER,
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 3},
    )
    assert r.completion_message.stop_reason == "out_of_tokens"
    assert {m.metric: m.value for m in r.metrics}["completion_tokens"] == 3
    full = client.inference.chat_completion(model_id=MODEL, messages=USER, sampling_params=GREEDY)
    words = full.completion_message.content.split()
    assert len(words) >= 3
    stop_word = words[2]
    r = client.inference.chat_completion(
        model_id=MODEL, messages=USER, sampling_params={**GREEDY, "stop": [stop_word]}
    )
    assert stop_word not in r.completion_message.content
    assert full.completion_message.content.startswith(r.completion_message.content)


def test_sampling_strategies(stack):
    client = stack.client()
    for strategy in (
        {"type": "top_p", "temperature": 0.8, "top_p": 0.9},
        {"type": "top_k", "top_k": 5},
    ):
        r = client.inference.chat_completion(
            model_id=MODEL,
            messages=USER,
            sampling_params={"strategy": strategy, "max_tokens": 8, "repetition_penalty": 1.2},
        )
        assert r.completion_message.content


def test_response_format_json_schema(stack):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer"},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    r = stack.client().inference.chat_completion(
        model_id=MODEL,
        messages=[
            {"role": "user", "content": "Give the capital of France and its population as JSON."}
        ],
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 64},
        response_format={"type": "json_schema", "json_schema": schema},
    )
    data = json.loads(r.completion_message.content)
    jsonschema.validate(data, schema)


def test_tool_call_required(stack):
    tools = [
        {
            "tool_name": "get_weather",
            "description": "Get the weather of a city",
            "parameters": {
                "city": {"param_type": "string", "description": "The city", "required": True}
            },
        }
    ]
    r = stack.client().inference.chat_completion(
        model_id=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=tools,
        tool_config={"tool_choice": "required"},
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 48},
    )
    calls = r.completion_message.tool_calls
    assert len(calls) == 1
    assert calls[0].tool_name == "get_weather"
    assert isinstance(calls[0].arguments, dict) and "city" in calls[0].arguments
    assert r.completion_message.stop_reason == "end_of_message"


def test_tool_call_history_round_trip(stack):
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "stop_reason": "end_of_message",
            "tool_calls": [
                {"call_id": "c1", "tool_name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "call_id": "c1", "content": "Sunny, 21 C"},
    ]
    tools = [
        {
            "tool_name": "get_weather",
            "description": "weather",
            "parameters": {"city": {"param_type": "string"}},
        }
    ]
    r = stack.client().inference.chat_completion(
        model_id=MODEL, messages=messages, tools=tools, sampling_params=GREEDY
    )
    assert r.completion_message.role == "assistant"


def test_logprobs(stack):
    r = stack.client().inference.chat_completion(
        model_id=MODEL,
        messages=USER,
        sampling_params={**GREEDY, "max_tokens": 5},
        logprobs={"top_k": 3},
    )
    assert len(r.logprobs) == 5
    for entry in r.logprobs:
        assert 1 <= len(entry.logprobs_by_token) <= 3
        assert all(v <= 0 for v in entry.logprobs_by_token.values())


def test_completion_and_stream(stack):
    client = stack.client()
    r = client.inference.completion(
        model_id=MODEL, content="The sky is", sampling_params={**GREEDY, "max_tokens": 6}
    )
    assert r.content and r.stop_reason in ("end_of_turn", "out_of_tokens")
    chunks = list(
        client.inference.completion(
            model_id=MODEL,
            content="The sky is",
            sampling_params={**GREEDY, "max_tokens": 6},
            stream=True,
        )
    )
    assert "".join(c.delta for c in chunks) == r.content
    assert chunks[-1].stop_reason is not None


def test_batch_chat_completion(stack):
    r = stack.client().inference.batch_chat_completion(
        model_id=MODEL,
        messages_batch=[USER, [{"role": "user", "content": "Say hi."}]],
        sampling_params={**GREEDY, "max_tokens": 8},
    )
    assert len(r.batch) == 2
    single = stack.client().inference.chat_completion(
        model_id=MODEL, messages=USER, sampling_params={**GREEDY, "max_tokens": 8}
    )
    assert r.batch[0].completion_message.content == single.completion_message.content


def test_batch_completion(stack):
    r = stack.client().inference.batch_completion(
        model_id=MODEL,
        content_batch=["One, two,", "Red, green,"],
        sampling_params={**GREEDY, "max_tokens": 4},
    )
    assert len(r.batch) == 2 and all(c.content for c in r.batch)


def test_embeddings(stack):
    r = stack.client().inference.embeddings(
        model_id=EMBEDDING_MODEL, contents=["hello world", "goodbye"]
    )
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 384
    norm = sum(x * x for x in r.embeddings[0]) ** 0.5
    assert abs(norm - 1.0) < 1e-3


def test_embedding_alias_and_dimension(stack):
    client = stack.client()
    r = client.inference.embeddings(
        model_id="sentence-transformers/all-MiniLM-L6-v2",
        contents=["hello world"],
        output_dimension=64,
    )
    assert len(r.embeddings[0]) == 64


def test_unknown_model_is_404_naming_it(stack):
    with pytest.raises(NotFoundError) as err:
        stack.client().inference.chat_completion(model_id="no-such-model", messages=USER)
    assert "no-such-model" in str(err.value)


def test_embedding_model_for_chat_is_400(stack):
    with pytest.raises(BadRequestError, match="embedding"):
        stack.client().inference.chat_completion(model_id=EMBEDDING_MODEL, messages=USER)


def test_external_provider_serves_through_stack(stack):
    r = stack.client().inference.chat_completion(
        model_id="echo-model", messages=[{"role": "user", "content": "ping"}]
    )
    assert r.completion_message.content == "echo: ping"


def test_stream_starts_before_generation_ends(stack):
    import time

    body = {
        "model_id": MODEL,
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 64},
        "stream": True,
    }
    started = time.monotonic()
    arrivals = []
    with stack.http().stream("POST", "/v1/inference/chat-completion", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and '"progress"' in line:
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) >= 10
    total = time.monotonic() - started
    assert arrivals[0] < total / 2, (arrivals[0], total)
