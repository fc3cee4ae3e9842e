"""`remote::bedrock` at the boto3 boundary.

Plain calls are answered by botocore's `Stubber` (which checks our request parameters
against the exact expected ones and the answers against Bedrock's response shapes).
`converse_stream` answers are real AWS event-stream bytes, handed to botocore's own parser
from a `before-send` hook, so the events our code reads are the ones botocore builds.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from stackray.api.common import StopReason
from stackray.api.errors import (
    BadRequestError,
    ConfigError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    ServiceUnavailableError,
)
from stackray.api.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
    OpenAIEmbeddingsRequest,
    ToolCallParseStatus,
)
from stackray.api.models import ModelType
from tests.unit.support.remote_servers import call, closed_port_url, collect, make_adapter

MODEL = "us.meta.llama3-3-70b-instruct-v1:0"
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret-example"}
WEATHER = {"tool_name": "get_weather", "parameters": {"city": {"param_type": "str"}}}
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def bedrock(**config: Any) -> Any:
    return make_adapter(
        "remote::bedrock",
        {"region_name": "us-west-2", "retry_backoff_s": 0, **KEYS, **config},
        "bedrock",
    )


def stub(adapter: Any, service: str = "bedrock-runtime") -> Stubber:
    stubber = Stubber(adapter.bedrock.boto_client(service))
    stubber.activate()
    return stubber


def converse_answer(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17},
        "metrics": {"latencyMs": 42},
        "ResponseMetadata": {"RequestId": "req-1", "HTTPStatusCode": 200},
    }


# ---- AWS event-stream encoding (the wire format of converse_stream) ----------------------


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + b"\x07" + struct.pack(">H", len(v)) + v


def _message(headers: dict[str, str], payload: bytes) -> bytes:
    head = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack(">I", binascii.crc32(body))


def event(kind: str, data: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return _message(headers, json.dumps(data).encode())


def exception_event(kind: str, message: str) -> bytes:
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return _message(headers, json.dumps({"message": message}).encode())


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        # In pieces that cut through messages, as a socket delivers them.
        for i in range(0, len(self.data), 37):
            yield self.data[i : i + 37]

    def read(self, *_: Any, **__: Any) -> bytes:
        return self.data

    def close(self) -> None:
        pass


def answer_stream(adapter: Any, *events: bytes) -> list[dict[str, Any]]:
    """Answer the next converse_stream calls with `events`; returns the sent bodies."""
    client = adapter.bedrock.boto_client("bedrock-runtime")
    sent: list[dict[str, Any]] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        sent.append(json.loads(request.body))
        assert request.url.endswith(f"/model/{MODEL.replace(':', '%3A')}/converse-stream")
        headers = {"content-type": "application/vnd.amazon.eventstream"}
        return AWSResponse(request.url, 200, headers, _Raw(b"".join(events)))

    client.meta.events.register("before-send.bedrock-runtime.ConverseStream", send)
    return sent


STREAM_WITH_TOOL = (
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"delta": {"text": "Let me "}, "contentBlockIndex": 0}),
    event("contentBlockDelta", {"delta": {"text": "check."}, "contentBlockIndex": 0}),
    event("contentBlockStop", {"contentBlockIndex": 0}),
    event(
        "contentBlockStart",
        {
            "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}},
            "contentBlockIndex": 1,
        },
    ),
    event(
        "contentBlockDelta", {"delta": {"toolUse": {"input": '{"city": '}}, "contentBlockIndex": 1}
    ),
    event(
        "contentBlockDelta", {"delta": {"toolUse": {"input": '"Paris"}'}}, "contentBlockIndex": 1}
    ),
    event("contentBlockStop", {"contentBlockIndex": 1}),
    event("messageStop", {"stopReason": "tool_use"}),
    event(
        "metadata",
        {
            "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39},
            "metrics": {"latencyMs": 80},
        },
    ),
)


# ---- config ------------------------------------------------------------------------------


def test_config_fields_as_in_llama_stack():
    from stackray.providers.remote.inference.bedrock.config import BedrockConfig

    config = BedrockConfig.model_validate(
        {
            **KEYS,
            "aws_session_token": "session-xyz",
            "region_name": "eu-west-1",
            "profile_name": None,
            "total_max_attempts": 5,
            "retry_mode": "adaptive",
            "connect_timeout": 5,
            "read_timeout": 30,
            "session_ttl": 600,
        }
    )
    assert "secret-example" not in repr(config) and "session-xyz" not in repr(config)
    assert BedrockConfig().connect_timeout == 60 and BedrockConfig().session_ttl == 3600
    with pytest.raises(ValueError, match="retry_mode"):
        BedrockConfig.model_validate({"retry_mode": "sometimes"})
    with pytest.raises(ValueError, match="url"):
        BedrockConfig.model_validate({"url": "http://x"})
    adapter = bedrock(total_max_attempts=5, read_timeout=30)
    client = adapter.bedrock.boto_client("bedrock-runtime")
    assert client.meta.region_name == "us-west-2"
    assert client.meta.config.read_timeout == 30
    assert client.meta.config.retries["total_max_attempts"] == 1  # the retries are ours
    assert adapter.bedrock.max_retries == 4


def test_no_region_fails_at_start(monkeypatch, tmp_path):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="no AWS region: set region_name"):
        make_adapter("remote::bedrock", {**KEYS}, "bedrock")


# ---- chat --------------------------------------------------------------------------------


def test_llama_stack_chat_with_tools_both_ways():
    adapter = bedrock()
    stubber = stub(adapter)
    stubber.add_response(
        "converse",
        converse_answer(
            [
                {"text": "Checking."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_9",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
            stop="tool_use",
        ),
        {
            "modelId": MODEL,
            "system": [{"text": "Be brief."}],
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "toolUse": {
                                "toolUseId": "c1",
                                "name": "get_weather",
                                "input": {"city": "Rome"},
                            }
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "c1", "content": [{"text": "sunny"}]}}
                    ],
                },
            ],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.5, "topP": 0.9},
            "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"auto": {}}},
        },
    )
    request = ChatCompletionRequest.model_validate(
        {
            "model_id": MODEL,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": "",
                    "stop_reason": "end_of_message",
                    "tool_calls": [
                        {"call_id": "c1", "tool_name": "get_weather", "arguments": {"city": "Rome"}}
                    ],
                },
                {"role": "tool", "call_id": "c1", "content": "sunny"},
            ],
            "sampling_params": {
                "strategy": {"type": "top_p", "temperature": 0.5, "top_p": 0.9},
                "max_tokens": 64,
            },
            "tools": [WEATHER],
        }
    )
    response = call(adapter, "chat_completion", request)
    stubber.assert_no_pending_responses()
    message = response.completion_message
    assert message.content == "Checking."
    assert message.stop_reason == StopReason.end_of_message
    assert [(c.call_id, c.tool_name, c.arguments) for c in message.tool_calls] == [
        ("tooluse_9", "get_weather", {"city": "Paris"})
    ]
    assert {m.metric: m.value for m in response.metrics} == {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
    }


def test_openai_chat_with_image_and_forced_tool():
    adapter = bedrock()
    stubber = stub(adapter)
    stubber.add_response(
        "converse",
        converse_answer([{"text": "A red pixel."}]),
        {
            "modelId": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "What is this?"},
                        {"image": {"format": "png", "source": {"bytes": base64.b64decode(PNG)}}},
                    ],
                }
            ],
            "inferenceConfig": {"maxTokens": 20, "stopSequences": ["END"]},
            "toolConfig": {
                "tools": [WEATHER_SPEC],
                "toolChoice": {"tool": {"name": "get_weather"}},
            },
        },
    )
    request = OpenAIChatCompletionRequest.model_validate(
        {
            "model": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                }
            ],
            "max_completion_tokens": 20,
            "stop": "END",
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": WEATHER_SPEC["toolSpec"]["inputSchema"]["json"],
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    )
    response = call(adapter, "openai_chat_completion", request)
    assert response.id == "chatcmpl-req-1"
    assert response.choices[0].message.content == "A red pixel."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.total_tokens == 17


def test_response_format_is_a_forced_tool_whose_input_is_the_answer():
    adapter = bedrock()
    stubber = stub(adapter)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    stubber.add_response(
        "converse",
        converse_answer(
            [{"toolUse": {"toolUseId": "t", "name": "json_response", "input": {"n": 3}}}],
            stop="tool_use",
        ),
        {
            "modelId": MODEL,
            "messages": [{"role": "user", "content": [{"text": "three"}]}],
            "inferenceConfig": {"temperature": 0.0},  # greedy, Llama Stack's default
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "json_response",
                            "description": ANY,
                            "inputSchema": {"json": schema},
                        }
                    }
                ],
                "toolChoice": {"tool": {"name": "json_response"}},
            },
        },
    )
    request = ChatCompletionRequest.model_validate(
        {
            "model_id": MODEL,
            "messages": [{"role": "user", "content": "three"}],
            "response_format": {"type": "json_schema", "json_schema": schema},
        }
    )
    response = call(adapter, "chat_completion", request)
    assert json.loads(response.completion_message.content) == {"n": 3}
    assert response.completion_message.tool_calls == []
    assert response.completion_message.stop_reason == StopReason.end_of_turn


def test_completion_is_one_user_turn():
    adapter = bedrock()
    stubber = stub(adapter)
    stubber.add_response(
        "converse",
        converse_answer([{"text": " blue."}], stop="max_tokens"),
        {
            "modelId": MODEL,
            "messages": [{"role": "user", "content": [{"text": "The sky is"}]}],
            "inferenceConfig": {"maxTokens": 3, "temperature": 0.0},
        },
    )
    request = CompletionRequest.model_validate(
        {"model_id": MODEL, "content": "The sky is", "sampling_params": {"max_tokens": 3}}
    )
    response = call(adapter, "completion", request)
    assert response.content == " blue."
    assert response.stop_reason == StopReason.out_of_tokens


def test_requests_bedrock_cannot_honour_are_400_before_any_call():
    adapter = bedrock()
    stubber = stub(adapter)  # no responses queued: any call would fail the test
    cases = [
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ]
            },
            "not URLs",
        ),
    ]
    for extra, match in cases:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}
        with pytest.raises(BadRequestError, match=match):
            call(
                adapter, "openai_chat_completion", OpenAIChatCompletionRequest.model_validate(body)
            )
    stubber.assert_no_pending_responses()


# ---- streaming ---------------------------------------------------------------------------


def test_llama_stack_stream_with_a_tool_call():
    adapter = bedrock()
    sent = answer_stream(adapter, *STREAM_WITH_TOOL)
    request = ChatCompletionRequest.model_validate(
        {
            "model_id": MODEL,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER],
            "stream": True,
        }
    )
    chunks = collect(adapter, "chat_completion_stream", request)
    assert sent[0]["toolConfig"]["tools"] == [WEATHER_SPEC]
    events = [c.event for c in chunks]
    assert events[0].event_type == "start"
    texts = [e.delta.text for e in events if e.event_type == "progress" and e.delta.type == "text"]
    assert "".join(texts) == "Let me check."
    calls = [e.delta for e in events if e.delta.type == "tool_call"]
    assert len(calls) == 1 and calls[0].parse_status == ToolCallParseStatus.succeeded
    assert calls[0].tool_call.call_id == "tooluse_1"
    assert calls[0].tool_call.arguments == {"city": "Paris"}
    assert events[-1].event_type == "complete"
    assert events[-1].stop_reason == StopReason.end_of_message
    assert {m.metric: m.value for m in chunks[-1].metrics}["total_tokens"] == 39


def test_openai_stream_sends_tool_call_deltas_and_usage():
    adapter = bedrock()
    answer_stream(adapter, *STREAM_WITH_TOOL)
    request = OpenAIChatCompletionRequest.model_validate(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    chunks = collect(adapter, "openai_chat_completion_stream", request)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [tc for c in chunks for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    assert pieces[0].id == "tooluse_1" and pieces[0].function.name == "get_weather"
    assert {p.index for p in pieces} == {0}
    assert "".join(p.function.arguments or "" for p in pieces) == '{"city": "Paris"}'
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 39


def test_an_exception_event_mid_stream_is_the_stacks_error():
    adapter = bedrock()
    answer_stream(
        adapter,
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"delta": {"text": "Hel"}, "contentBlockIndex": 0}),
        exception_event("throttlingException", "Too many tokens, please wait"),
    )
    request = ChatCompletionRequest.model_validate(
        {"model_id": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    with pytest.raises(QuotaExceededError, match="provider 'bedrock'.*Too many tokens"):
        collect(adapter, "chat_completion_stream", request)


# ---- errors and retries ------------------------------------------------------------------


def _chat() -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model_id": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    )


def test_throttling_is_retried_then_429():
    adapter = bedrock(total_max_attempts=3)
    stubber = stub(adapter)
    for _ in range(2):
        stubber.add_client_error("converse", "ThrottlingException", "Rate exceeded", 429)
    stubber.add_response("converse", converse_answer([{"text": "ok"}]))
    assert call(adapter, "chat_completion", _chat()).completion_message.content == "ok"
    stubber.assert_no_pending_responses()

    for _ in range(3):
        stubber.add_client_error("converse", "ThrottlingException", "Rate exceeded", 429)
    with pytest.raises(
        QuotaExceededError, match="provider 'bedrock'.*429 ThrottlingException"
    ) as exc:
        call(adapter, "chat_completion", _chat())
    assert exc.value.status_code == 429
    stubber.assert_no_pending_responses()

    for _ in range(3):
        stubber.add_client_error("converse", "ServiceUnavailableException", "busy", 503)
    with pytest.raises(ServiceUnavailableError) as unavailable:
        call(adapter, "chat_completion", _chat())
    assert unavailable.value.status_code == 503
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "error", "http"),
    [
        ("ValidationException", 400, BadRequestError, 400),
        ("AccessDeniedException", 403, ProviderError, 502),
        ("ResourceNotFoundException", 404, NotFoundError, 404),
        ("InternalServerException", 500, ProviderError, 502),
    ],
)
def test_other_errors_are_not_retried(code, status, error, http):
    adapter = bedrock()
    stubber = stub(adapter)
    stubber.add_client_error("converse", code, "the message", status)
    with pytest.raises(error, match=f"provider 'bedrock'.*{code}: the message") as exc:
        call(adapter, "chat_completion", _chat())
    assert exc.value.status_code == http
    stubber.assert_no_pending_responses()  # one call: no retry
    if code == "AccessDeniedException":
        assert "credentials" in exc.value.message


def test_an_unreachable_endpoint_is_503_after_retries():
    adapter = bedrock(endpoint_url=closed_port_url(), connect_timeout=2, total_max_attempts=2)
    with pytest.raises(ServiceUnavailableError, match="provider 'bedrock': cannot reach Bedrock"):
        call(adapter, "chat_completion", _chat())


# ---- embeddings and models ---------------------------------------------------------------


def _body(data: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(data).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


def test_titan_embeddings_one_call_per_text():
    adapter = bedrock()
    stubber = stub(adapter)
    model = "amazon.titan-embed-text-v2:0"
    for text, vector in (("a", [0.1, 0.2]), ("b", [0.3, 0.4])):
        stubber.add_response(
            "invoke_model",
            _body({"embedding": vector, "inputTextTokenCount": 1}),
            {
                "modelId": model,
                "body": json.dumps({"inputText": text, "dimensions": 256}),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
    request = OpenAIEmbeddingsRequest.model_validate(
        {"model": model, "input": ["a", "b"], "dimensions": 256}
    )
    response = call(adapter, "openai_embeddings", request)
    # (gather starts both calls; the stubber answers in order of arrival)
    assert sorted(d.embedding for d in response.data) == [[0.1, 0.2], [0.3, 0.4]]
    assert response.usage.prompt_tokens == 2
    stubber.assert_no_pending_responses()


def test_cohere_embeddings_one_batch_with_input_type():
    adapter = bedrock()
    stubber = stub(adapter)
    model = "cohere.embed-english-v3"
    stubber.add_response(
        "invoke_model",
        _body({"id": "x", "embeddings": [[1.0, 0.0], [0.0, 1.0]], "texts": ["q1", "q2"]}),
        {
            "modelId": model,
            "body": json.dumps({"texts": ["q1", "q2"], "input_type": "search_query"}),
            "contentType": "application/json",
            "accept": "application/json",
        },
    )
    request = EmbeddingsRequest.model_validate(
        {"model_id": model, "contents": ["q1", "q2"], "task_type": "query"}
    )
    assert call(adapter, "embeddings", request).embeddings == [[1.0, 0.0], [0.0, 1.0]]
    # The OpenAI SDK asks for base64 (little-endian float32).
    stubber.add_response(
        "invoke_model",
        _body({"embeddings": [[0.5, 0.25]]}),
        {"modelId": model, "body": ANY, "contentType": ANY, "accept": ANY},
    )
    openai = OpenAIEmbeddingsRequest.model_validate(
        {"model": model, "input": "d", "encoding_format": "base64"}
    )
    encoded = call(adapter, "openai_embeddings", openai).data[0].embedding
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, 0.25)


def test_models_are_listed_from_bedrock():
    adapter = bedrock()
    stubber = stub(adapter, "bedrock")
    stubber.add_response(
        "list_foundation_models",
        {
            "modelSummaries": [
                {
                    "modelArn": "arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-8b-instruct-v1:0",
                    "modelId": "meta.llama3-8b-instruct-v1:0",
                    "providerName": "Meta",
                    "outputModalities": ["TEXT"],
                },
                {
                    "modelArn": "arn:aws:bedrock:us-west-2::foundation-model/amazon.titan-embed-text-v2:0",
                    "modelId": "amazon.titan-embed-text-v2:0",
                    "providerName": "Amazon",
                    "outputModalities": ["EMBEDDING"],
                },
            ]
        },
        {},
    )
    listed = call(adapter, "list_models")
    assert [(m.identifier, m.model_type) for m in listed] == [
        ("meta.llama3-8b-instruct-v1:0", ModelType.llm),
        ("amazon.titan-embed-text-v2:0", ModelType.embedding),
    ]


# ---- per-request credentials -------------------------------------------------------------


def test_provider_data_brings_the_requests_own_aws_credentials():
    from tests.unit.providers.remote.test_inference import with_provider_data

    adapter = bedrock()
    configured = stub(adapter)  # nothing queued: the configured client must not be used
    own = ("AKIDREQUEST", "request-secret", "request-token")
    client = adapter.bedrock.boto_client("bedrock-runtime", own)
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key, credentials.token) == own
    assert client.meta.region_name == "us-west-2"
    stubber = Stubber(client)
    stubber.activate()
    stubber.add_response("converse", converse_answer([{"text": "yours"}]))
    data = dict(
        zip(("aws_access_key_id", "aws_secret_access_key", "aws_session_token"), own, strict=True)
    )
    response = with_provider_data(data, call, adapter, "chat_completion", _chat())
    assert response.completion_message.content == "yours"
    stubber.assert_no_pending_responses()
    configured.assert_no_pending_responses()

    with pytest.raises(
        BadRequestError, match="needs both 'aws_access_key_id' and 'aws_secret_access_key'"
    ):
        with_provider_data({"aws_access_key_id": "AKID"}, call, adapter, "chat_completion", _chat())
    with pytest.raises(BadRequestError, match="'aws_secret_access_key' must be a string"):
        with_provider_data(
            {"aws_access_key_id": "AKID", "aws_secret_access_key": 3},
            call,
            adapter,
            "chat_completion",
            _chat(),
        )
