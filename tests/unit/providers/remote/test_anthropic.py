"""`remote::anthropic` against Anthropic's Messages API on 127.0.0.1
(`remote_anthropic_server`): system prompts, tool use whole and streamed, tool results
sent back, the key in `x-api-key` (per request as provider data too), the `anthropic/`
model prefix of Llama Stack's templates, and what Anthropic does not serve."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import copy_context
from typing import Any

import pytest

from stackray.api.errors import AuthenticationError, BadRequestError, NotFoundError
from stackray.api.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
)
from stackray.api.models import Model
from stackray.runtime.request_context import provider_data_var
from tests.unit.support.remote_anthropic_server import KEY, anthropic_app
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
def _anthropic() -> Iterator[FakeService]:
    service = FakeService(anthropic_app).start()
    yield service
    service.stop()


@pytest.fixture()
def anthropic(_anthropic: FakeService) -> FakeService:
    _anthropic.reset()
    _anthropic.required_key = KEY
    return _anthropic


def adapter(service: FakeService, **config: Any) -> Any:
    return make_adapter(
        "remote::anthropic", {"url": service.url, "api_key": KEY, **config}, "anthropic"
    )


def test_chat_with_a_system_prompt_and_the_templates_model_prefix(anthropic: FakeService):
    request = ChatCompletionRequest(
        model_id="anthropic/claude-3-5-sonnet-latest",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
    )
    answer = call(adapter(anthropic), "chat_completion", request)
    assert answer.completion_message.content == "echo: hello there"
    assert answer.completion_message.stop_reason.value == "end_of_turn"
    sent = anthropic.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"]
    assert "authorization" not in sent.headers
    assert sent.body["model"] == "claude-3-5-sonnet-latest"
    assert sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 4096
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hello there"}]}
    ]


def test_tool_use_then_the_tool_result_goes_back(anthropic: FakeService):
    first = OpenAIChatCompletionRequest(
        model="claude-3-5-sonnet-latest",
        messages=[{"role": "user", "content": "Paris"}],
        tools=[WEATHER],
    )
    answer = call(adapter(anthropic), "openai_chat_completion", first)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    call_ = choice.message.tool_calls[0]
    assert call_.function.name == "get_weather" and call_.function.arguments == '{"city": "Paris"}'
    assert anthropic.last.body["tools"][0]["input_schema"]["properties"] == {
        "city": {"type": "string"}
    }
    second = OpenAIChatCompletionRequest(
        model="claude-3-5-sonnet-latest",
        messages=[
            {"role": "user", "content": "Paris"},
            {"role": "assistant", "content": None, "tool_calls": [call_.model_dump()]},
            {"role": "tool", "tool_call_id": call_.id, "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    final = call(adapter(anthropic), "openai_chat_completion", second)
    assert final.choices[0].message.content == "result: sunny"
    assert anthropic.last.body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call_.id, "content": "sunny"}],
    }


def test_streamed_text_and_streamed_tool_use(anthropic: FakeService):
    text = OpenAIChatCompletionRequest(
        model="claude-3-5-sonnet-latest",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
    )
    chunks = collect(adapter(anthropic), "openai_chat_completion_stream", text)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: a b c"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 12

    tools = ChatCompletionRequest(
        model_id="claude-3-5-sonnet-latest",
        messages=[{"role": "user", "content": "both Rome"}],
        tools=[
            {"tool_name": "get_weather", "parameters": {"city": {"param_type": "string"}}},
            {"tool_name": "get_time", "parameters": {"city": {"param_type": "string"}}},
        ],
    )
    events = collect(adapter(anthropic), "chat_completion_stream", tools)
    calls = [
        e.event.delta.tool_call
        for e in events
        if e.event.delta.type == "tool_call" and e.event.delta.parse_status.value == "succeeded"
    ]
    assert [(c.tool_name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "both Rome"}),
        ("get_time", {"city": "both Rome"}),
    ]
    assert events[-1].event.stop_reason.value == "end_of_message"


def test_the_key_of_the_request_wins(anthropic: FakeService):
    anthropic.required_key = "sk-ant-request"
    request = ChatCompletionRequest(
        model_id="claude-3-5-haiku-latest", messages=[{"role": "user", "content": "x"}]
    )
    with pytest.raises(AuthenticationError, match="invalid x-api-key"):
        call(adapter(anthropic), "chat_completion", request)

    def with_key() -> Any:
        provider_data_var.set({"anthropic_api_key": "sk-ant-request"})
        return call(adapter(anthropic), "chat_completion", request)

    assert copy_context().run(with_key).completion_message.content == "echo: x"
    with pytest.raises(BadRequestError, match="anthropic_api_key"):
        call(adapter(anthropic, api_key=None), "chat_completion", request)


def test_models_listed_and_registered_with_the_prefix(anthropic: FakeService):
    listed = call(adapter(anthropic), "list_models")
    assert {m.identifier for m in listed} == {"claude-3-5-sonnet-latest", "claude-3-5-haiku-latest"}
    model = Model(
        identifier="anthropic/claude-3-5-sonnet-latest",
        provider_id="anthropic",
        provider_resource_id="anthropic/claude-3-5-sonnet-latest",
    )
    assert call(adapter(anthropic), "register_model", model) == model
    with pytest.raises(NotFoundError):
        call(
            adapter(anthropic),
            "chat_completion",
            ChatCompletionRequest(model_id="claude-0", messages=[{"role": "user", "content": "x"}]),
        )


def test_completions_and_embeddings_are_refused_naming_the_model(anthropic: FakeService):
    with pytest.raises(BadRequestError, match="no text completions"):
        call(adapter(anthropic), "completion", CompletionRequest(model_id="claude-x", content="hi"))
    with pytest.raises(BadRequestError, match="no embeddings .*voyage-3"):
        call(
            adapter(anthropic),
            "embeddings",
            EmbeddingsRequest(model_id="anthropic/voyage-3", contents=["x"]),
        )
    assert anthropic.requests == []
