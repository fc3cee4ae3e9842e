"""The remote inference adapters against a real OpenAI-compatible service on 127.0.0.1:
where each one sends requests, with which key, the OpenAI routes passed through, model
registration, and how failures map to the stack's errors (with retries)."""

from __future__ import annotations

import asyncio
import base64
import struct
from contextvars import copy_context
from typing import Any

import pytest
from pydantic import SecretStr

from stackray.api.datatypes import Api
from stackray.api.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    ServiceUnavailableError,
    StackError,
)
from stackray.api.inference import (
    ChatCompletionRequest,
    Inference,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
)
from stackray.api.models import Model
from stackray.providers.registry import BUILTIN_PROVIDERS, import_object
from stackray.runtime.request_context import provider_data_var
from tests.unit.support.remote_servers import (
    Failure,
    FakeService,
    call,
    closed_port_url,
    collect,
    make_adapter,
)

# provider_type, config for a service at `base`, path of chat completions there,
# provider-data key, name of the key in the config.
OPENAI_COMPATIBLE = [
    ("remote::vllm", lambda base: {"url": f"{base}/v1"}, "/v1", "vllm_api_token", "api_token"),
    ("remote::openai", lambda base: {"url": f"{base}/v1"}, "/v1", "openai_api_key", "api_key"),
    (
        "remote::together",
        lambda base: {"url": f"{base}/v1"},
        "/v1",
        "together_api_key",
        "api_key",
    ),
    (
        "remote::fireworks",
        lambda base: {"url": f"{base}/inference/v1"},
        "/inference/v1",
        "fireworks_api_key",
        "api_key",
    ),
    ("remote::groq", lambda base: {"url": base}, "/openai/v1", "groq_api_key", "api_key"),
    (
        "remote::cerebras",
        lambda base: {"base_url": base},
        "/v1",
        "cerebras_api_key",
        "api_key",
    ),
    (
        "remote::sambanova",
        lambda base: {"url": f"{base}/v1"},
        "/v1",
        "sambanova_api_key",
        "api_key",
    ),
]
# Llama Stack 0.2.12's passthrough (another Llama Stack server's OpenAI routes) and the
# `-openai-compat` providers.
OPENAI_COMPATIBLE += [
    (
        "remote::passthrough",
        lambda base: {"url": base},
        "/v1/openai/v1",
        "passthrough_api_key",
        "api_key",
    ),
    *(
        (
            f"remote::{name}-openai-compat",
            lambda base: {"openai_compat_api_base": f"{base}/v1"},
            "/v1",
            f"{name}_api_key",
            "api_key",
        )
        for name in ("llama", "cerebras", "fireworks", "groq", "together", "sambanova")
    ),
]
IDS = [row[0] for row in OPENAI_COMPATIBLE]
REMOTE_TYPES = {
    *IDS,
    "remote::ollama",
    "remote::nvidia",
    "remote::tgi",
    "remote::hf::serverless",
    "remote::hf::endpoint",
    "remote::watsonx",
    "remote::anthropic",
    "remote::gemini",
    "remote::databricks",
    "remote::runpod",
}
KEYLESS = {"remote::vllm", "remote::passthrough"}
"""Services usually reached without a key: a request without one is sent."""


def chat(text: str = "hi", model: str = "served-model", **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model_id=model, messages=[{"role": "user", "content": text}], **fields
    )


def openai_chat(text: str = "hi", **fields: Any) -> OpenAIChatCompletionRequest:
    return OpenAIChatCompletionRequest(
        model="served-model", messages=[{"role": "user", "content": text}], **fields
    )


def vllm(server: FakeService, **config: Any) -> Any:
    return make_adapter("remote::vllm", {"url": f"{server.url}/v1", **config}, "vllm")


def with_provider_data(data: Any, fn: Any, *args: Any) -> Any:
    def run() -> Any:
        provider_data_var.set(data)
        return fn(*args)

    return copy_context().run(run)


# ---- registry and configs --------------------------------------------------------------


def test_every_remote_adapter_is_registered_in_process():
    specs = {
        s.provider_type: s
        for s in BUILTIN_PROVIDERS
        if s.provider_type.startswith("remote::") and s.api == Api.inference
    }
    assert set(specs) == REMOTE_TYPES | {"remote::bedrock"}
    for spec in specs.values():
        assert spec.deployment is None
        impl = import_object(spec.impl)
        assert impl.provider_type == spec.provider_type


def test_adapters_implement_the_inference_protocol(openai_server):
    adapter = vllm(openai_server)
    assert isinstance(adapter, Inference)


@pytest.mark.parametrize("provider_type", sorted(REMOTE_TYPES))
def test_configs_forbid_unknown_fields_and_hide_secrets(provider_type):
    spec = next(s for s in BUILTIN_PROVIDERS if s.provider_type == provider_type)
    config_cls = import_object(spec.config_class)
    assert config_cls.model_config["extra"] == "forbid"
    with pytest.raises(ValueError, match="prot"):
        config_cls.model_validate({"url": "http://x", "prot": 1})
    secrets = [n for n, f in config_cls.model_fields.items() if "SecretStr" in str(f.annotation)]
    if provider_type in ("remote::ollama", "remote::tgi"):
        assert secrets == []
        return
    assert len(secrets) == 1
    required: dict[str, str] = (
        {"url": "http://x"} if provider_type in KEYLESS | {"remote::databricks"} else {}
    )
    required |= {
        "remote::hf::serverless": {"huggingface_repo": "org/m"},
        "remote::hf::endpoint": {"endpoint_name": "org/e"},
    }.get(provider_type, {})
    config = config_cls.model_validate({**required, secrets[0]: "sk-very-secret"})
    assert "sk-very-secret" not in repr(config)
    assert getattr(config, secrets[0]) == SecretStr("sk-very-secret")


def test_vllm_config_fields_as_in_llama_stack(tmp_path):
    from stackray.providers.remote.inference.vllm.config import VLLMInferenceAdapterConfig

    config = VLLMInferenceAdapterConfig.model_validate(
        {"url": "http://h:8000/v1", "max_tokens": "128", "tls_verify": "false"}
    )
    assert (config.max_tokens, config.tls_verify) == (128, False)
    assert config.api_token == SecretStr("fake")
    assert VLLMInferenceAdapterConfig(url="u", tls_verify="true").tls_verify is True
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    assert VLLMInferenceAdapterConfig(url="u", tls_verify=str(ca)).tls_verify == str(ca)
    with pytest.raises(ValueError, match="does not exist"):
        VLLMInferenceAdapterConfig(url="u", tls_verify=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="url"):
        VLLMInferenceAdapterConfig.model_validate({})


def test_openai_config_takes_base_url_too():
    from stackray.providers.remote.inference.openai.config import OpenAIConfig

    assert OpenAIConfig().url == "https://api.openai.com/v1"
    assert OpenAIConfig.model_validate({"base_url": "http://proxy/v1"}).url == "http://proxy/v1"


# ---- where requests go, with which key -----------------------------------------------------


@pytest.mark.parametrize(
    ("provider_type", "config", "prefix", "data_key", "key_field"), OPENAI_COMPATIBLE, ids=IDS
)
def test_url_and_configured_key(openai_server, provider_type, config, prefix, data_key, key_field):
    adapter = make_adapter(provider_type, {**config(openai_server.url), key_field: "k-config"})
    response = call(adapter, "chat_completion", chat("hello"))
    assert response.completion_message.content == "echo: hello"
    assert openai_server.last.path == f"{prefix}/chat/completions"
    assert openai_server.last.headers["authorization"] == "Bearer k-config"


@pytest.mark.parametrize(
    ("provider_type", "config", "prefix", "data_key", "key_field"), OPENAI_COMPATIBLE, ids=IDS
)
def test_provider_data_key_overrides_the_configured_one(
    openai_server, provider_type, config, prefix, data_key, key_field
):
    openai_server.required_key = "k-request"
    adapter = make_adapter(provider_type, {**config(openai_server.url), key_field: "k-config"})
    data = {data_key: "k-request", "some_other_key": "x"}
    with_provider_data(data, call, adapter, "openai_chat_completion", openai_chat())
    assert openai_server.last.headers["authorization"] == "Bearer k-request"
    # Without provider data the configured key is sent again (and refused here).
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        call(adapter, "openai_chat_completion", openai_chat())
    assert openai_server.last.headers["authorization"] == "Bearer k-config"


@pytest.mark.parametrize(
    ("provider_type", "config", "prefix", "data_key", "key_field"), OPENAI_COMPATIBLE, ids=IDS
)
def test_provider_data_key_must_be_a_string(
    openai_server, provider_type, config, prefix, data_key, key_field
):
    adapter = make_adapter(provider_type, config(openai_server.url))
    with pytest.raises(BadRequestError, match=data_key):
        with_provider_data({data_key: 42}, call, adapter, "chat_completion", chat())
    assert openai_server.requests == []


@pytest.mark.parametrize(
    ("provider_type", "config", "prefix", "data_key", "key_field"), OPENAI_COMPATIBLE, ids=IDS
)
def test_without_any_key(openai_server, provider_type, config, prefix, data_key, key_field):
    adapter = make_adapter(provider_type, config(openai_server.url))
    if provider_type == "remote::vllm":
        # vLLM servers usually take no key; Llama Stack's default token is sent.
        call(adapter, "chat_completion", chat())
        assert openai_server.last.headers["authorization"] == "Bearer fake"
        return
    if provider_type in KEYLESS:
        call(adapter, "chat_completion", chat())
        assert "authorization" not in openai_server.last.headers
        return
    with pytest.raises(BadRequestError, match=f"no API key.*{data_key}"):
        call(adapter, "chat_completion", chat())
    assert openai_server.requests == []


def test_vllm_without_token_sends_no_authorization(openai_server):
    call(vllm(openai_server, api_token=None), "chat_completion", chat())
    assert "authorization" not in openai_server.last.headers


# ---- models ----------------------------------------------------------------------------


def model(provider_model_id: str, identifier: str = "m") -> Model:
    return Model(identifier=identifier, provider_id="vllm", provider_resource_id=provider_model_id)


def test_list_models_is_what_the_service_serves(openai_server):
    listed = call(vllm(openai_server), "list_models")
    assert [m.identifier for m in listed] == ["served-model", "other-model"]
    assert {m.provider_id for m in listed} == {"vllm"}
    assert listed[0].metadata["owned_by"] == "fake"


def test_register_model_checks_the_listing(openai_server):
    adapter = vllm(openai_server)
    assert call(adapter, "register_model", model("served-model")).identifier == "m"
    with pytest.raises(BadRequestError, match="does not serve model 'typo'.*served-model") as err:
        call(adapter, "register_model", model("typo"))
    assert err.value.field == "provider_model_id"
    # Any model id is accepted: there is no built-in list.
    openai_server.models.append("org/brand-new-model")
    call(adapter, "register_model", model("org/brand-new-model"))


def test_register_model_accepts_any_id_when_the_service_lists_none(openai_server):
    openai_server.lists_models = False
    assert call(vllm(openai_server), "list_models") is None
    call(vllm(openai_server), "register_model", model("anything"))


def test_register_model_while_the_service_is_down_is_accepted():
    adapter = make_adapter("remote::vllm", {"url": closed_port_url(), "max_retries": 0}, "vllm")
    assert call(adapter, "register_model", model("x")).provider_resource_id == "x"


# ---- OpenAI routes pass through ------------------------------------------------------------


def test_openai_chat_completion_passes_through(openai_server):
    request = openai_chat("hello", temperature=0.5, seed=7, stream=False, store=False)
    response = call(vllm(openai_server), "openai_chat_completion", request)
    sent = openai_server.last.body
    assert sent == {
        "model": "served-model",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.5,
        "seed": 7,
        "store": False,  # an unknown field goes on as it came
    }
    assert response.choices[0].message.content == "echo: hello"
    assert response.usage.total_tokens == 3
    # vLLM's max_tokens default is for Llama Stack requests only.
    assert "max_tokens" not in sent


def test_openai_chat_stream_parses_every_event(openai_server):
    request = openai_chat("a b c", stream=True, stream_options={"include_usage": True})
    chunks = collect(vllm(openai_server), "openai_chat_completion_stream", request)
    assert openai_server.last.body["stream"] is True
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: a b c"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


def test_openai_chat_stream_tool_call_pieces_pass_through(openai_server):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    request = openai_chat("Paris", tools=tools, stream=True)
    chunks = collect(vllm(openai_server), "openai_chat_completion_stream", request)
    pieces = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    assert len(pieces) > 2 and pieces[0].function.name == "get_weather"
    assert "".join(p.function.arguments or "" for p in pieces) == '{"city": "Paris"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_completion_and_stream(openai_server):
    adapter = vllm(openai_server)
    request = OpenAICompletionRequest(model="served-model", prompt=["one", "two"], max_tokens=5)
    response = call(adapter, "openai_completion", request)
    assert [c.text for c in response.choices] == ["echo: one", "echo: two"]
    assert openai_server.last.path == "/v1/completions"
    stream = OpenAICompletionRequest(model="served-model", prompt="x y", stream=True)
    chunks = collect(adapter, "openai_completion_stream", stream)
    assert "".join(c.choices[0].text for c in chunks) == "echo: x y"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_embeddings_float_and_base64(openai_server):
    adapter = vllm(openai_server)
    request = OpenAIEmbeddingsRequest(model="served-model", input=["a b", "ccc"], dimensions=3)
    response = call(adapter, "openai_embeddings", request)
    assert [d.index for d in response.data] == [1, 0]  # as the service sent them
    assert response.data[1].embedding == [3.0, 2.0, 0.25]
    packed = call(
        adapter,
        "openai_embeddings",
        OpenAIEmbeddingsRequest(model="served-model", input="a b", encoding_format="base64"),
    )
    raw = base64.b64decode(packed.data[0].embedding)
    assert list(struct.unpack("<4f", raw)) == [3.0, 2.0, 0.25, 0.25]


# ---- errors ----------------------------------------------------------------------------

OPENAI_ERROR = {"error": {"message": "upstream says no", "type": "invalid_request_error"}}


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, OPENAI_ERROR, BadRequestError),
        (401, OPENAI_ERROR, AuthenticationError),
        (403, OPENAI_ERROR, PermissionDeniedError),
        (404, OPENAI_ERROR, NotFoundError),
        (409, {"message": "upstream says no"}, ConflictError),
        (422, {"detail": "upstream says no"}, BadRequestError),
        (429, OPENAI_ERROR, QuotaExceededError),
        (500, {"error": "upstream says no"}, ProviderError),
        (502, OPENAI_ERROR, ProviderError),
        (503, OPENAI_ERROR, ProviderError),
    ],
)
def test_upstream_status_maps_to_stack_error(openai_server, status, body, error):
    openai_server.fail(Failure(status=status, body=body))
    adapter = vllm(openai_server, max_retries=0)
    with pytest.raises(StackError) as err:
        call(adapter, "chat_completion", chat())
    assert type(err.value) is error
    assert err.value.status_code == (502 if status >= 500 else {422: 400}.get(status, status))
    message = err.value.message
    assert "provider 'vllm'" in message and str(status) in message
    assert "upstream says no" in message
    assert f"{openai_server.url}/v1/chat/completions" in message


def test_unknown_model_upstream_is_not_found(openai_server):
    with pytest.raises(NotFoundError, match="`ghost` does not exist"):
        call(vllm(openai_server), "chat_completion", chat(model="ghost"))


def test_connection_refused_is_503_naming_provider_and_url():
    url = closed_port_url()
    adapter = make_adapter("remote::vllm", {"url": f"{url}/v1", "retry_backoff_s": 0.01}, "vllm")
    with pytest.raises(ServiceUnavailableError) as err:
        call(adapter, "chat_completion", chat())
    assert "provider 'vllm'" in err.value.message
    assert f"{url}/v1/chat/completions" in err.value.message
    assert "after 3 tries" in err.value.message


def test_timeout_is_504_naming_provider_and_url(openai_server):
    openai_server.fail(Failure(delay=1.0))
    adapter = vllm(openai_server, timeout_s=0.2)
    with pytest.raises(ProviderTimeoutError) as err:
        call(adapter, "chat_completion", chat())
    assert "provider 'vllm'" in err.value.message and openai_server.url in err.value.message
    assert len(openai_server.requests) == 1  # a request that may be running is not retried


def test_503_is_retried_then_succeeds(openai_server):
    openai_server.fail(Failure(status=503, body=OPENAI_ERROR), Failure(status=503))
    adapter = vllm(openai_server, retry_backoff_s=0.01)
    assert call(adapter, "chat_completion", chat()).completion_message.content == "echo: hi"
    assert len(openai_server.requests) == 3


def test_429_is_retried_after_retry_after(openai_server):
    openai_server.fail(Failure(status=429, body=OPENAI_ERROR, headers={"Retry-After": "0.05"}))
    adapter = vllm(openai_server, retry_backoff_s=0.01)
    call(adapter, "openai_chat_completion", openai_chat())
    assert len(openai_server.requests) == 2


def test_retries_are_bounded(openai_server):
    openai_server.fail(*[Failure(status=503, body=OPENAI_ERROR)] * 5)
    adapter = vllm(openai_server, retry_backoff_s=0.01, max_retries=2)
    with pytest.raises(ProviderError, match="503"):
        call(adapter, "chat_completion", chat())
    assert len(openai_server.requests) == 3


def test_a_long_retry_after_is_not_waited_for(openai_server):
    openai_server.fail(Failure(status=429, body=OPENAI_ERROR, headers={"Retry-After": "3600"}))
    with pytest.raises(QuotaExceededError):
        call(vllm(openai_server), "chat_completion", chat())
    assert len(openai_server.requests) == 1


def test_400_is_not_retried(openai_server):
    openai_server.fail(Failure(status=400, body=OPENAI_ERROR))
    with pytest.raises(BadRequestError):
        call(vllm(openai_server, retry_backoff_s=0.01), "chat_completion", chat())
    assert len(openai_server.requests) == 1


def test_stream_error_status_raises_before_the_first_chunk(openai_server):
    openai_server.fail(Failure(status=401, body=OPENAI_ERROR))

    async def first() -> Any:
        stream = vllm(openai_server).chat_completion_stream(chat(stream=True))
        return await stream.__anext__()

    with pytest.raises(AuthenticationError):
        asyncio.run(first())


def test_error_in_the_middle_of_a_stream(openai_server):
    openai_server.fail(Failure(status=500, mid_stream=True))
    with pytest.raises(ProviderError, match="the engine died"):
        collect(vllm(openai_server), "openai_chat_completion_stream", openai_chat("a b c d"))


def test_an_answer_that_is_not_openai_is_a_provider_error(openai_server):
    openai_server.fail(Failure(status=200, body={"unexpected": True}))
    with pytest.raises(ProviderError, match="unexpected answer"):
        call(vllm(openai_server), "chat_completion", chat())
