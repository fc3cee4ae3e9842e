"""`remote::ollama` against a real Ollama-API service on 127.0.0.1: its own routes for the
Llama Stack API (JSON-lines streaming), `/v1` for the OpenAI API, models from `/api/tags`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stackray.api.common import StopReason
from stackray.api.errors import (
    BadRequestError,
    NotFoundError,
    ProviderError,
    ServiceUnavailableError,
)
from stackray.api.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
    ToolCallParseStatus,
)
from stackray.api.models import Model
from tests.unit.support.remote_servers import (
    Failure,
    FakeService,
    call,
    closed_port_url,
    collect,
    make_adapter,
)

WEATHER = {"tool_name": "get_weather", "parameters": {"city": {"param_type": "str"}}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def ollama(server: FakeService, **config: Any) -> Any:
    return make_adapter("remote::ollama", {"url": server.url, **config}, "ollama")


def chat(text: str = "hi", **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model_id": "llama3.2", "messages": [{"role": "user", "content": text}], **fields}
    )


def metrics(response: Any) -> dict[str, Any]:
    return {m.metric: m.value for m in response.metrics}


def test_models_come_from_tags(ollama_server):
    adapter = ollama(ollama_server)
    listed = call(adapter, "list_models")
    assert [m.identifier for m in listed] == ["llama3.2:latest", "all-minilm:latest"]
    assert listed[0].metadata["family"] == "llama"
    assert ollama_server.last.path == "/api/tags"
    for name in ("llama3.2", "llama3.2:latest"):
        model = Model(identifier="m", provider_id="ollama", provider_resource_id=name)
        assert call(adapter, "register_model", model) == model
    missing = Model(identifier="m", provider_id="ollama", provider_resource_id="qwen3")
    with pytest.raises(BadRequestError, match="`ollama pull qwen3`"):
        call(adapter, "register_model", missing)


def test_start_checks_the_server_unless_told_not_to(ollama_server):
    call(ollama(ollama_server), "initialize")
    assert ollama_server.last.path == "/api/version"
    down = make_adapter("remote::ollama", {"url": closed_port_url(), "max_retries": 0})
    with pytest.raises(ServiceUnavailableError, match="api/version"):
        call(down, "initialize")
    lenient = make_adapter(
        "remote::ollama", {"url": closed_port_url(), "raise_on_connect_error": False}
    )
    call(lenient, "initialize")


def test_chat_request_on_the_wire(ollama_server):
    request = ChatCompletionRequest.model_validate(
        {
            "model_id": "llama3.2",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather?"},
                        {"type": "image", "image": {"data": PNG}},
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
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [WEATHER],
            "sampling_params": {
                "strategy": {"type": "top_k", "top_k": 4},
                "max_tokens": 7,
                "repetition_penalty": 1.1,
                "stop": ["."],
            },
            "response_format": {"type": "json_schema", "json_schema": {"type": "object"}},
        }
    )
    call(ollama(ollama_server), "chat_completion", request)
    sent = ollama_server.last
    assert sent.path == "/api/chat"
    assert "authorization" not in sent.headers
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?", "images": [PNG]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "user", "content": "Thanks"},
    ]
    assert sent.body["options"] == {
        "temperature": 1.0,
        "top_k": 4,
        "repeat_penalty": 1.1,
        "num_predict": 7,
        "stop": ["."],
    }
    assert sent.body["format"] == {"type": "object"}
    assert sent.body["tools"][0]["function"]["name"] == "get_weather"
    assert sent.body["stream"] is False


def test_chat_answers(ollama_server):
    adapter = ollama(ollama_server)
    response = call(adapter, "chat_completion", chat("one two"))
    assert response.completion_message.content == "echo: one two"
    assert response.completion_message.stop_reason == StopReason.end_of_turn
    assert metrics(response) == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    cut = call(adapter, "chat_completion", chat("one two", sampling_params={"max_tokens": 1}))
    assert cut.completion_message.stop_reason == StopReason.out_of_tokens
    tool = call(adapter, "chat_completion", chat("Paris", tools=[WEATHER]))
    [tool_call] = tool.completion_message.tool_calls
    assert (tool_call.tool_name, tool_call.arguments) == ("get_weather", {"city": "Paris"})
    assert tool.completion_message.stop_reason == StopReason.end_of_message


def test_streamed_chat_is_json_lines(ollama_server):
    adapter = ollama(ollama_server)
    chunks = collect(adapter, "chat_completion_stream", chat("a b", stream=True))
    assert ollama_server.last.body["stream"] is True
    assert (
        "".join(c.event.delta.text for c in chunks if c.event.delta.type == "text") == "echo: a b"
    )
    assert chunks[0].event.event_type.value == "start"
    assert chunks[-1].event.stop_reason == StopReason.end_of_turn
    assert metrics(chunks[-1])["completion_tokens"] == 3
    chunks = collect(adapter, "chat_completion_stream", chat("Oslo", tools=[WEATHER], stream=True))
    [delta] = [c.event.delta for c in chunks if c.event.delta.type == "tool_call"]
    assert delta.parse_status == ToolCallParseStatus.succeeded
    assert delta.tool_call.arguments == {"city": "Oslo"}
    assert chunks[-1].event.stop_reason == StopReason.end_of_message


def test_error_line_in_a_stream(ollama_server):
    ollama_server.fail(Failure(status=500, mid_stream=True))
    with pytest.raises(ProviderError, match="the runner died"):
        collect(ollama(ollama_server), "chat_completion_stream", chat("a b c d", stream=True))


def test_generate_is_raw_completion(ollama_server):
    adapter = ollama(ollama_server)
    request = CompletionRequest(
        model_id="llama3.2", content="x y", sampling_params={"max_tokens": 2}
    )
    response = call(adapter, "completion", request)
    assert ollama_server.last.path == "/api/generate"
    assert ollama_server.last.body["raw"] is True
    assert ollama_server.last.body["options"] == {"temperature": 0.0, "num_predict": 2}
    assert (response.content, response.stop_reason) == ("echo: x", StopReason.out_of_tokens)
    chunks = collect(
        adapter, "completion_stream", CompletionRequest(model_id="llama3.2", content="x y")
    )
    assert "".join(c.delta for c in chunks) == "echo: x y"
    assert chunks[-1].stop_reason == StopReason.end_of_turn


def test_embed(ollama_server):
    adapter = ollama(ollama_server)
    request = EmbeddingsRequest(model_id="all-minilm", contents=["a b", "c"], output_dimension=2)
    response = call(adapter, "embeddings", request)
    assert ollama_server.last.path == "/api/embed"
    assert ollama_server.last.body == {
        "model": "all-minilm",
        "input": ["a b", "c"],
        "truncate": False,
        "dimensions": 2,
    }
    assert response.embeddings == [[3.0, 2.0], [1.0, 1.0]]
    with pytest.raises(BadRequestError, match="at the end only"):
        call(
            adapter,
            "embeddings",
            EmbeddingsRequest(model_id="all-minilm", contents=["a"], text_truncation="start"),
        )


def test_openai_routes_go_to_v1(ollama_server):
    request = OpenAIChatCompletionRequest(
        model="llama3.2:latest", messages=[{"role": "user", "content": "hey"}]
    )
    response = call(ollama(ollama_server), "openai_chat_completion", request)
    assert ollama_server.last.path == "/v1/chat/completions"
    assert response.choices[0].message.content == "echo: hey"


def test_refusals(ollama_server):
    adapter = ollama(ollama_server)
    with pytest.raises(BadRequestError) as err:
        call(adapter, "chat_completion", chat(logprobs={"top_k": 1}))
    assert err.value.field == "logprobs"
    with pytest.raises(BadRequestError, match="cannot force a tool call"):
        call(
            adapter,
            "chat_completion",
            chat(tools=[WEATHER], tool_config={"tool_choice": "required"}),
        )
    image_url = {"type": "image", "image": {"url": {"uri": "https://x/cat.png"}}}
    with pytest.raises(BadRequestError, match="images as data"):
        call(adapter, "chat_completion", chat([image_url]))
    assert ollama_server.requests == []


def test_unknown_model_is_not_found_with_ollamas_message(ollama_server):
    with pytest.raises(NotFoundError, match='model "ghost" not found, try pulling it first'):
        call(
            ollama(ollama_server),
            "chat_completion",
            ChatCompletionRequest(model_id="ghost", messages=[{"role": "user", "content": "x"}]),
        )


def test_streams_are_closed_when_the_consumer_stops(ollama_server):
    async def main() -> str:
        adapter = ollama(ollama_server)
        stream = adapter.chat_completion_stream(chat("a b c d e f", stream=True))
        await stream.__anext__()
        second = await stream.__anext__()
        await stream.aclose()
        await adapter.close()
        return second.event.delta.text

    assert asyncio.run(main()) == "echo: "
