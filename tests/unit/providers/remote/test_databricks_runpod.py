"""`remote::databricks` and `remote::runpod`: OpenAI-compatible services at the configured
URL with a bearer token (the OpenAI stand-in on 127.0.0.1), and runpod's empty `url` of
Llama Stack's template refused when the provider starts."""

from __future__ import annotations

import pytest

from stackray.api.errors import BadRequestError, ConfigError
from stackray.api.inference import ChatCompletionRequest
from tests.unit.support.remote_servers import FakeService, call, make_adapter


def chat(text: str) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model_id="served-model", messages=[{"role": "user", "content": text}]
    )


@pytest.mark.parametrize(
    ("provider_type", "prefix"),
    [("remote::databricks", "/inference/v1"), ("remote::runpod", "/openai/v1")],
)
def test_chat_at_the_url_with_the_token(openai_server: FakeService, provider_type, prefix):
    config = {"url": f"{openai_server.url}{prefix}", "api_token": "tok"}
    answer = call(make_adapter(provider_type, config, "p"), "chat_completion", chat("hi"))
    assert answer.completion_message.content == "echo: hi"
    assert openai_server.last.path == f"{prefix}/chat/completions"
    assert openai_server.last.headers["authorization"] == "Bearer tok"
    with pytest.raises(BadRequestError, match="no API key"):
        call(
            make_adapter(provider_type, {"url": f"{openai_server.url}{prefix}"}, "p"),
            "chat_completion",
            chat("x"),
        )


def test_runpod_without_a_url_refuses_to_start():
    with pytest.raises(ConfigError, match="url is not set"):
        make_adapter("remote::runpod", {"url": None, "api_token": None}, "runpod")
