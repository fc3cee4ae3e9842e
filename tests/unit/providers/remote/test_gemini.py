"""`remote::gemini` against the Gemini API on 127.0.0.1 (`remote_gemini_server`):
generateContent with a system instruction and the templates' `gemini/` prefix, function
calling and responses, streaming (`alt=sse`), embeddings, the key per request."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import copy_context
from typing import Any

import pytest

from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
    OpenAIEmbeddingsRequest,
)
from stackray.runtime.request_context import provider_data_var
from tests.unit.support.remote_gemini_server import KEY, gemini_app
from tests.unit.support.remote_servers import FakeService, call, collect, make_adapter

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def _gemini() -> Iterator[FakeService]:
    service = FakeService(gemini_app).start()
    yield service
    service.stop()


@pytest.fixture()
def gemini(_gemini: FakeService) -> FakeService:
    _gemini.reset()
    _gemini.required_key = KEY
    return _gemini


def adapter(service: FakeService, **config: Any) -> Any:
    return make_adapter(
        "remote::gemini", {"url": f"{service.url}/v1beta", "api_key": KEY, **config}, "gemini"
    )


def test_generate_content_with_a_system_instruction(gemini: FakeService):
    request = ChatCompletionRequest(
        model_id="gemini/gemini-2.0-flash",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi you"},
        ],
        sampling_params={"max_tokens": 50},
    )
    answer = call(adapter(gemini), "chat_completion", request)
    assert answer.completion_message.content == "echo: hi you"
    sent = gemini.last
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hi you"}]}]
    assert sent.body["generationConfig"]["maxOutputTokens"] == 50


def test_function_call_and_response(gemini: FakeService):
    first = OpenAIChatCompletionRequest(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "Oslo"}], tools=[WEATHER]
    )
    choice = call(adapter(gemini), "openai_chat_completion", first).choices[0]
    assert choice.finish_reason == "tool_calls"
    tool_call = choice.message.tool_calls[0]
    assert tool_call.function.name == "get_weather"
    assert tool_call.function.arguments == '{"city": "Oslo"}'
    second = OpenAIChatCompletionRequest(
        model="gemini-2.0-flash",
        messages=[
            {"role": "user", "content": "Oslo"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call.model_dump()]},
            {"role": "tool", "tool_call_id": tool_call.id, "content": '{"sky": "grey"}'},
        ],
        tools=[WEATHER],
    )
    final = call(adapter(gemini), "openai_chat_completion", second)
    assert final.choices[0].message.content == 'result: {"sky": "grey"}'
    assert gemini.last.body["contents"][-1] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "grey"}}}],
    }


def test_streamed_text_and_streamed_function_call(gemini: FakeService):
    text = OpenAIChatCompletionRequest(
        model="gemini-2.0-flash", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    chunks = collect(adapter(gemini), "openai_chat_completion_stream", text)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: a b c"
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage is not None
    assert gemini.last.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    tools = ChatCompletionRequest(
        model_id="gemini-2.0-flash",
        messages=[{"role": "user", "content": "Lima"}],
        tools=[{"tool_name": "get_weather", "parameters": {"city": {"param_type": "string"}}}],
    )
    events = collect(adapter(gemini), "chat_completion_stream", tools)
    calls = [
        e.event.delta.tool_call
        for e in events
        if e.event.delta.type == "tool_call" and e.event.delta.parse_status.value == "succeeded"
    ]
    assert [(c.tool_name, c.arguments) for c in calls] == [("get_weather", {"city": "Lima"})]
    assert events[-1].event.stop_reason.value == "end_of_message"


def test_embeddings_llama_stack_and_openai(gemini: FakeService):
    vectors = call(
        adapter(gemini),
        "embeddings",
        EmbeddingsRequest(model_id="gemini/text-embedding-004", contents=["a b", "cc"]),
    )
    assert vectors.embeddings == [[3.0, 2.0, 0.25, 0.25], [2.0, 1.0, 0.25, 0.25]]
    assert gemini.last.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    openai = call(
        adapter(gemini),
        "openai_embeddings",
        OpenAIEmbeddingsRequest(model="text-embedding-004", input="x", dimensions=2),
    )
    assert openai.data[0].embedding == [1.0, 1.0]


def test_keys_models_and_what_gemini_does_not_serve(gemini: FakeService):
    gemini.required_key = "request-key"
    request = ChatCompletionRequest(
        model_id="gemini-2.0-flash", messages=[{"role": "user", "content": "x"}]
    )
    with pytest.raises(BadRequestError, match="API key not valid"):
        call(adapter(gemini), "chat_completion", request)

    def with_key() -> Any:
        provider_data_var.set({"gemini_api_key": "request-key"})
        return call(adapter(gemini), "chat_completion", request)

    assert copy_context().run(with_key).completion_message.content == "echo: x"
    gemini.required_key = KEY
    listed = {m.identifier for m in call(adapter(gemini), "list_models")}
    assert listed == {"gemini-2.0-flash", "text-embedding-004"}
    with pytest.raises(NotFoundError):
        call(
            adapter(gemini),
            "chat_completion",
            ChatCompletionRequest(model_id="gemini-0", messages=[{"role": "user", "content": "x"}]),
        )
    with pytest.raises(BadRequestError, match="no text completions"):
        call(
            adapter(gemini),
            "completion",
            CompletionRequest(model_id="gemini-2.0-flash", content="x"),
        )
