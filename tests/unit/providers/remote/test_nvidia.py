"""`remote::nvidia` against a NIM stand-in (OpenAI's API on 127.0.0.1, the wire format a
NIM serves): where requests go with `append_api_version`, the key of the hosted API, the
0.2.12 `timeout`, and NIM's embedding parameters."""

from __future__ import annotations

import pytest

from stackray.api.errors import BadRequestError, ProviderTimeoutError
from stackray.api.inference import ChatCompletionRequest, EmbeddingsRequest
from stackray.providers.remote.inference.nvidia.config import NVIDIAConfig
from tests.unit.support.remote_servers import Failure, FakeService, call, make_adapter


def chat(text: str = "hi") -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model_id="served-model", messages=[{"role": "user", "content": text}]
    )


def test_a_self_hosted_nim_is_called_at_url_v1_without_a_key(openai_server: FakeService):
    adapter = make_adapter("remote::nvidia", {"url": openai_server.url}, "nvidia")
    assert call(adapter, "chat_completion", chat("hello")).completion_message.content == (
        "echo: hello"
    )
    assert openai_server.last.path == "/v1/chat/completions"
    assert "authorization" not in openai_server.last.headers


def test_a_configured_key_is_sent_and_append_api_version_false_keeps_the_url(
    openai_server: FakeService,
):
    config = {
        "url": f"{openai_server.url}/inference/v1",
        "api_key": "nvapi-k",
        "append_api_version": "False",  # ${env.NVIDIA_APPEND_API_VERSION:True} set to False
    }
    adapter = make_adapter("remote::nvidia", config, "nvidia")
    call(adapter, "chat_completion", chat())
    assert openai_server.last.path == "/inference/v1/chat/completions"
    assert openai_server.last.headers["authorization"] == "Bearer nvapi-k"


def test_the_hosted_api_without_a_key_is_refused_before_sending():
    config = NVIDIAConfig.model_validate({"api_key": None})
    assert config.is_hosted() and config.url == "https://integrate.api.nvidia.com"
    adapter = make_adapter("remote::nvidia", {}, "nvidia")
    with pytest.raises(BadRequestError, match="provider 'nvidia' has no API key"):
        call(adapter, "chat_completion", chat())


def test_the_0_2_12_timeout_field_bounds_a_request(openai_server: FakeService):
    openai_server.fail(Failure(delay=2.0))
    adapter = make_adapter(
        "remote::nvidia", {"url": openai_server.url, "timeout": 1, "max_retries": 0}, "nvidia"
    )
    with pytest.raises(ProviderTimeoutError, match="provider 'nvidia'"):
        call(adapter, "chat_completion", chat())


def test_embeddings_carry_nims_input_type_and_truncate(openai_server: FakeService):
    adapter = make_adapter("remote::nvidia", {"url": openai_server.url}, "nvidia")
    request = EmbeddingsRequest(
        model_id="served-model", contents=["a b", "ccc"], task_type="query", text_truncation="end"
    )
    response = call(adapter, "embeddings", request)
    assert len(response.embeddings) == 2
    body = openai_server.last.body
    assert openai_server.last.path == "/v1/embeddings"
    assert (body["input_type"], body["truncate"], body["input"]) == ("query", "END", ["a b", "ccc"])
    call(adapter, "embeddings", EmbeddingsRequest(model_id="served-model", contents=["x"]))
    assert "input_type" not in openai_server.last.body
    assert openai_server.last.body["truncate"] == "NONE"
