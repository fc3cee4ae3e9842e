"""The gateway over an in-process stack whose model is served by `remote::vllm`, pointed at
a real OpenAI-compatible service on 127.0.0.1: both API surfaces, streaming, errors."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from stackray.api.errors import BadRequestError
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.remote_servers import Failure, FakeService

OPENAI_ERROR = {"error": {"message": "bad key", "type": "invalid_request_error"}}


def stack(server: FakeService, tmp_path, model: str = "served-model") -> dict:
    return {
        "version": 2,
        "image_name": "remote-test",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{server.url}/v1", "retry_backoff_s": 0.01},
                }
            ]
        },
        "models": [{"model_id": "m", "provider_id": "vllm", "provider_model_id": model}],
        "storage": {"data_dir": str(tmp_path)},
    }


@pytest.fixture()
def client(openai_server, tmp_path):
    config = parse_config(stack(openai_server, tmp_path))
    routers = asyncio.run(build_local_stack(config))
    with TestClient(create_gateway_app(config, routers)) as c:
        yield c


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_start_registers_the_model_with_the_service(openai_server, tmp_path):
    config = parse_config(stack(openai_server, tmp_path))
    asyncio.run(build_local_stack(config))
    assert [r.path for r in openai_server.requests] == ["/v1/models"]


def test_start_fails_for_a_model_the_service_does_not_serve(openai_server, tmp_path):
    config = parse_config(stack(openai_server, tmp_path, model="typo"))
    with pytest.raises(BadRequestError, match="does not serve model 'typo'"):
        asyncio.run(build_local_stack(config))


def test_llama_stack_chat_completion(client, openai_server):
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["completion_message"]["content"] == "echo: hi"
    assert body["completion_message"]["stop_reason"] == "end_of_turn"
    assert {m["metric"] for m in body["metrics"]} >= {"prompt_tokens", "completion_tokens"}
    assert openai_server.last.body["model"] == "served-model"


def test_llama_stack_chat_completion_streamed_tool_call(client):
    r = client.post(
        "/v1/inference/chat-completion",
        json={
            "model_id": "m",
            "messages": [{"role": "user", "content": "Oslo"}],
            "tools": [{"tool_name": "get_weather", "parameters": {"city": {"param_type": "str"}}}],
            "stream": True,
        },
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(e)["event"] for e in sse_events(r.text)]
    assert events[0]["event_type"] == "start" and events[-1]["event_type"] == "complete"
    [call] = [e["delta"] for e in events if e["delta"]["type"] == "tool_call"]
    assert call["parse_status"] == "succeeded"
    assert call["tool_call"]["arguments"] == {"city": "Oslo"}
    assert events[-1]["stop_reason"] == "end_of_message"


def test_openai_chat_completion(client, openai_server):
    r = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "m"  # the stack's name, not the service's
    assert body["choices"][0]["message"]["content"] == "echo: hello"
    assert openai_server.last.body == {
        "model": "served-model",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 5,
    }
    stored = client.get(f"/v1/openai/v1/chat/completions/{body['id']}")
    assert stored.status_code == 200


def test_openai_chat_completion_stream(client):
    r = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "a b"}], "stream": True},
    )
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["model"] for c in chunks} == {"m"}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: a b"


def test_upstream_errors_keep_their_status(client, openai_server):
    openai_server.fail(Failure(status=401, body=OPENAI_ERROR))
    r = client.post(
        "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 401
    assert "provider 'vllm'" in r.json()["detail"] and "bad key" in r.json()["detail"]
    openai_server.fail(Failure(status=500, body={"error": "boom"}))
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
    )
    assert r.status_code == 502 and "boom" in r.json()["detail"]


def test_provider_data_header_brings_the_token(client, openai_server):
    body = {"model_id": "m", "messages": [{"role": "user", "content": "x"}]}
    headers = {"X-LlamaStack-Provider-Data": '{"vllm_api_token": "per-request"}'}
    assert (
        client.post("/v1/inference/chat-completion", json=body, headers=headers).status_code == 200
    )
    assert openai_server.last.headers["authorization"] == "Bearer per-request"
    streamed = client.post(
        "/v1/inference/chat-completion", json={**body, "stream": True}, headers=headers
    )
    assert streamed.status_code == 200
    assert openai_server.last.headers["authorization"] == "Bearer per-request"
    client.post("/v1/inference/chat-completion", json=body)
    assert openai_server.last.headers["authorization"] == "Bearer fake"
    bad = {"X-LlamaStack-Provider-Data": '{"vllm_api_token": 7}'}
    r = client.post("/v1/inference/chat-completion", json=body, headers=bad)
    assert r.status_code == 400 and "vllm_api_token" in r.json()["detail"]
