"""The Llama Stack routes carried over OpenAI's API: what the adapters send for Llama Stack
requests (checked on the wire), and how the answers come back, streamed ones included."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stackray.api.common import StopReason
from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    ToolCallDelta,
    ToolCallParseStatus,
)
from stackray.providers.remote.inference.translate import (
    ChatStreamTranslator,
    chat_response_from_openai,
)
from tests.unit.support.remote_servers import FakeService, call, collect, make_adapter

WEATHER = {
    "tool_name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "city": {"param_type": "str", "description": "The city"},
        "days": {"param_type": "int", "required": False, "default": 1},
    },
}
TIME = {"tool_name": "get_time", "parameters": {"zone": {"param_type": "str"}}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def vllm(server: FakeService, **config: Any) -> Any:
    return make_adapter("remote::vllm", {"url": f"{server.url}/v1", **config}, "vllm")


def openai(server: FakeService) -> Any:
    return make_adapter("remote::openai", {"url": f"{server.url}/v1", "api_key": "k"}, "openai")


def chat(text: str = "hi", **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model_id": "served-model", "messages": [{"role": "user", "content": text}], **fields}
    )


def tool_deltas(chunks: list[Any]) -> list[ToolCallDelta]:
    return [c.event.delta for c in chunks if c.event.delta.type == "tool_call"]


def text_of(chunks: list[Any]) -> str:
    return "".join(c.event.delta.text for c in chunks if c.event.delta.type == "text")


def metrics(response: Any) -> dict[str, Any]:
    return {m.metric: m.value for m in response.metrics}


# ---- chat requests -----------------------------------------------------------------------


def test_messages_tools_and_tool_calls_on_the_wire(openai_server):
    request = ChatCompletionRequest.model_validate(
        {
            "model_id": "served-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image", "image": {"data": PNG}},
                        {"type": "image", "image": {"url": {"uri": "https://x/cat.jpg"}}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": "",
                    "stop_reason": "end_of_message",
                    "tool_calls": [
                        {"call_id": "c1", "tool_name": "get_weather", "arguments": {"city": "Oslo"}}
                    ],
                },
                {"role": "tool", "call_id": "c1", "content": "sunny"},
                {"role": "user", "content": "Thanks", "context": "retrieved text"},
            ],
            "tools": [WEATHER],
            "tool_config": {"tool_choice": "get_weather"},
        }
    )
    call(vllm(openai_server), "chat_completion", request)
    body = openai_server.last.body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "user", "content": "Thanks\n\nretrieved text"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "The city"},
                        "days": {"type": "integer", "default": 1},
                    },
                    "required": ["city"],
                },
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize(
    ("sampling", "expected"),
    [
        ({}, {"temperature": 0.0, "max_tokens": 4096}),
        (
            {"strategy": {"type": "top_p", "temperature": 0.7, "top_p": 0.9}, "max_tokens": 20},
            {"temperature": 0.7, "top_p": 0.9, "max_tokens": 20},
        ),
        (
            {"strategy": {"type": "top_k", "top_k": 5}, "repetition_penalty": 1.2, "stop": ["\n"]},
            {
                "temperature": 1.0,
                "top_k": 5,
                "repetition_penalty": 1.2,
                "stop": ["\n"],
                "max_tokens": 4096,
            },
        ),
    ],
)
def test_sampling_on_the_wire(openai_server, sampling, expected):
    call(vllm(openai_server), "chat_completion", chat(sampling_params=sampling))
    body = openai_server.last.body
    sent = {k: body[k] for k in body if k not in ("model", "messages")}
    assert sent == expected


def test_vllm_max_tokens_default_comes_from_its_config(openai_server):
    call(vllm(openai_server, max_tokens=64), "chat_completion", chat())
    assert openai_server.last.body["max_tokens"] == 64


def test_openai_takes_max_completion_tokens_and_refuses_what_it_lacks(openai_server):
    adapter = openai(openai_server)
    call(adapter, "chat_completion", chat(sampling_params={"max_tokens": 9}))
    assert openai_server.last.body["max_completion_tokens"] == 9
    assert "max_tokens" not in openai_server.last.body
    with pytest.raises(BadRequestError, match="remote::openai does not take top_k") as err:
        call(
            adapter,
            "chat_completion",
            chat(sampling_params={"strategy": {"type": "top_k", "top_k": 3}}),
        )
    assert err.value.field == "sampling_params.strategy"
    with pytest.raises(BadRequestError) as err:
        call(adapter, "chat_completion", chat(sampling_params={"repetition_penalty": 1.3}))
    assert err.value.field == "sampling_params.repetition_penalty"
    assert len(openai_server.requests) == 1


def test_response_format_json_schema(openai_server):
    schema = {"title": "Echo reply", "type": "object", "properties": {"echo": {"type": "string"}}}
    response = call(
        vllm(openai_server),
        "chat_completion",
        chat("hi", response_format={"type": "json_schema", "json_schema": schema}),
    )
    assert openai_server.last.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Echo_reply", "schema": schema},
    }
    assert json.loads(response.completion_message.content) == {"echo": "hi"}
    with pytest.raises(BadRequestError, match="json_schema, not grammar"):
        call(
            vllm(openai_server),
            "chat_completion",
            chat(response_format={"type": "grammar", "bnf": {"root": "x"}}),
        )


def test_logprobs_both_ways(openai_server):
    response = call(vllm(openai_server), "chat_completion", chat("a b", logprobs={"top_k": 2}))
    assert (openai_server.last.body["logprobs"], openai_server.last.body["top_logprobs"]) == (
        True,
        2,
    )
    assert [lp.logprobs_by_token for lp in response.logprobs] == [
        {"echo:": -0.25, "alt": -2.5},
        {"a": -0.25, "alt": -2.5},
        {"b": -0.25, "alt": -2.5},
    ]


# ---- chat answers ------------------------------------------------------------------------


def test_answer_stop_reasons_and_metrics(openai_server):
    adapter = vllm(openai_server)
    done = call(adapter, "chat_completion", chat("one two three"))
    assert done.completion_message.stop_reason == StopReason.end_of_turn
    assert metrics(done) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    cut = call(adapter, "chat_completion", chat("one two three", sampling_params={"max_tokens": 2}))
    assert cut.completion_message.content == "echo: one"
    assert cut.completion_message.stop_reason == StopReason.out_of_tokens


def test_tool_call_answer(openai_server):
    response = call(vllm(openai_server), "chat_completion", chat("Paris", tools=[WEATHER]))
    message = response.completion_message
    assert message.stop_reason == StopReason.end_of_message
    assert message.content == ""
    [tool_call] = message.tool_calls
    assert (tool_call.call_id, tool_call.tool_name) == ("call_0", "get_weather")
    assert tool_call.arguments == {"city": "Paris"}
    assert json.loads(tool_call.arguments_json) == {"city": "Paris"}


def test_tool_choice_none_sends_tools_without_calls(openai_server):
    response = call(
        vllm(openai_server),
        "chat_completion",
        chat("Paris", tools=[WEATHER], tool_config={"tool_choice": "none"}),
    )
    assert openai_server.last.body["tool_choice"] == "none"
    assert response.completion_message.tool_calls == []


def test_streamed_text_with_metrics(openai_server):
    chunks = collect(vllm(openai_server), "chat_completion_stream", chat("a b c", stream=True))
    assert openai_server.last.body["stream"] is True
    assert openai_server.last.body["stream_options"] == {"include_usage": True}
    kinds = [c.event.event_type.value for c in chunks]
    assert kinds[0] == "start" and kinds[-1] == "complete" and set(kinds[1:-1]) == {"progress"}
    assert text_of(chunks) == "echo: a b c"
    assert chunks[-1].event.stop_reason == StopReason.end_of_turn
    assert metrics(chunks[-1]) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_streamed_tool_calls_are_assembled(openai_server):
    # The service sends each call's arguments in 4-character pieces.
    request = chat("both cities", tools=[WEATHER, TIME], stream=True)
    chunks = collect(vllm(openai_server), "chat_completion_stream", request)
    deltas = tool_deltas(chunks)
    assert [d.parse_status for d in deltas] == [ToolCallParseStatus.succeeded] * 2
    assert [(d.tool_call.tool_name, d.tool_call.arguments) for d in deltas] == [
        ("get_weather", {"city": "both cities"}),
        ("get_time", {"zone": "both cities"}),
    ]
    assert [d.tool_call.call_id for d in deltas] == ["call_0", "call_1"]
    assert chunks[-1].event.stop_reason == StopReason.end_of_message


def test_streamed_logprobs(openai_server):
    request = chat("a", stream=True, logprobs={"top_k": 1})
    chunks = collect(vllm(openai_server), "chat_completion_stream", request)
    logprobs = [lp.logprobs_by_token for c in chunks for lp in c.event.logprobs or []]
    assert logprobs == [{"echo:": -0.25}, {"a": -0.25}]


def test_stream_translator_on_its_own():
    t = ChatStreamTranslator()

    def piece(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [t.start()]
    out += t.feed(piece({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}))
    out += t.feed(piece({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": '}}]}))
    out += t.feed(piece({"tool_calls": [{"index": 0, "function": {"arguments": "[1, 2]}"}}]}))
    # A second call whose arguments never become JSON: reported as failed, with its text.
    out += t.feed(
        piece(
            {
                "tool_calls": [
                    {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{oops"}}
                ]
            }
        )
    )
    out += t.feed(piece({}, "tool_calls"))
    out += t.feed({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    out += t.finish()
    first, second = tool_deltas(out)
    assert first.parse_status == ToolCallParseStatus.succeeded
    assert first.tool_call.arguments == {"x": [1, 2]} and first.tool_call.call_id == "a"
    assert (second.parse_status, second.tool_call) == (ToolCallParseStatus.failed, "{oops")
    assert out[-1].event.stop_reason == StopReason.end_of_message
    assert metrics(out[-1])["total_tokens"] == 7


def test_tool_arguments_that_are_no_flat_object_stay_text():
    data = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "1",
                            "function": {"name": "f", "arguments": '{"a": {"b": {"c": 1}}}'},
                        }
                    ],
                },
            }
        ]
    }
    [tool_call] = chat_response_from_openai(data).completion_message.tool_calls
    assert tool_call.arguments == '{"a": {"b": {"c": 1}}}'


# ---- completion and embeddings -------------------------------------------------------------


def test_completion_both_ways(openai_server):
    adapter = vllm(openai_server)
    request = CompletionRequest(
        model_id="served-model",
        content="a b c",
        sampling_params={"max_tokens": 3},
        logprobs={"top_k": 1},
    )
    response = call(adapter, "completion", request)
    body = openai_server.last.body
    assert openai_server.last.path == "/v1/completions"
    assert (body["prompt"], body["max_tokens"], body["logprobs"]) == ("a b c", 3, 1)
    assert response.content == "echo: a b"
    assert response.stop_reason == StopReason.out_of_tokens
    assert [lp.logprobs_by_token for lp in response.logprobs] == [
        {"echo:": -0.25},
        {"a": -0.25},
        {"b": -0.25},
    ]
    assert metrics(response)["completion_tokens"] == 3


def test_completion_stream(openai_server):
    request = CompletionRequest(model_id="served-model", content="x y", stream=True)
    chunks = collect(vllm(openai_server), "completion_stream", request)
    assert "".join(c.delta for c in chunks) == "echo: x y"
    assert [c.stop_reason for c in chunks][:-1] == [None] * (len(chunks) - 1)
    assert chunks[-1].stop_reason == StopReason.end_of_turn
    assert {m.metric: m.value for m in chunks[-1].metrics}["completion_tokens"] == 3


def test_embeddings_both_ways(openai_server):
    adapter = vllm(openai_server)
    request = EmbeddingsRequest(
        model_id="served-model",
        contents=[{"type": "text", "text": "a b"}, {"type": "text", "text": "ccc"}],
        output_dimension=3,
    )
    response = call(adapter, "embeddings", request)
    assert openai_server.last.body == {
        "model": "served-model",
        "input": ["a b", "ccc"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    # The service answered in reverse order; the embeddings follow the contents.
    assert response.embeddings == [[3.0, 2.0, 0.25], [3.0, 1.0, 0.25]]
    with pytest.raises(BadRequestError, match="does not truncate") as err:
        call(
            adapter,
            "embeddings",
            EmbeddingsRequest(model_id="served-model", contents=["a"], text_truncation="end"),
        )
    assert err.value.field == "text_truncation"
