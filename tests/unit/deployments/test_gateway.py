"""The gateway's HTTP surface over an in-process stack (no Ray): routing, SSE framing,
error mapping and validation, with the external echo provider as the only backend."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.calls import local_client
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack


@pytest.fixture()
def client(tmp_path):
    stack = parse_config(
        {
            "version": 2,
            "image_name": "gw",
            "apis": ["inference"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "echo",
                        "provider_type": "remote::echo",
                        "module": "stackray_echo",
                    }
                ]
            },
            "models": [{"model_id": "m", "provider_id": "echo"}],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as c:
        yield c


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_health_and_version(client):
    assert client.get("/v1/health").json() == {"status": "OK"}
    assert client.get("/v1/version").json()["version"]


def test_chat_completion(client):
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    assert r.json()["completion_message"]["content"] == "echo: hi"


def test_stream_is_sse(client):
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "a b"}], "stream": True},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(e) for e in sse_events(r.text)]
    assert (
        events[0]["event"]["event_type"] == "start"
        and events[-1]["event"]["event_type"] == "complete"
    )


def test_openai_stream_ends_with_done(client):
    r = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "a"}], "stream": True},
    )
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    assert json.loads(events[0])["object"] == "chat.completion.chunk"


def test_stream_of_unknown_model_is_404_not_a_broken_stream(client):
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "ghost", "messages": [{"role": "user", "content": "a"}], "stream": True},
    )
    assert r.status_code == 404
    assert "ghost" in r.json()["detail"]


def test_validation_error_is_400_naming_field(client):
    r = client.post(
        "/v1/inference/chat-completion", json={"model_id": "m", "messages": [{"role": "user"}]}
    )
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["param"].startswith("messages")
    assert "content" in body["detail"]


def test_invalid_json_is_400(client):
    r = client.post(
        "/v1/inference/chat-completion", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400


def test_malformed_json_names_the_body_and_where_it_broke(client):
    r = client.post(
        "/v1/inference/chat-completion",
        content=b'{"model_id": "m",\n "messages": [}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "body"
    assert error["message"] == (
        "the request body is not valid JSON: Expecting value at line 2, column 15"
    )
    assert r.json()["detail"] == error["message"]


CHAT = {"model_id": "m", "messages": [{"role": "user", "content": "hi"}]}
OPENAI_CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SAMPLING_ROUTES = [
    # (path, body, field path to a sampling param in it)
    ("/v1/inference/chat-completion", CHAT, "sampling_params"),
    ("/v1/inference/completion", {"model_id": "m", "content": "hi"}, "sampling_params"),
    (
        "/v1/inference/batch-chat-completion",
        {"model_id": "m", "messages_batch": [CHAT["messages"]]},
        "sampling_params",
    ),
    (
        "/v1/inference/batch-completion",
        {"model_id": "m", "content_batch": ["hi"]},
        "sampling_params",
    ),
]
BAD_SAMPLING = [
    ({"strategy": {"type": "top_p", "temperature": -1}}, "strategy.temperature", "-1"),
    ({"strategy": {"type": "top_p", "top_p": 0}}, "strategy.top_p", "0"),
    ({"strategy": {"type": "top_p", "top_p": 1.5}}, "strategy.top_p", "1.5"),
    ({"strategy": {"type": "top_k", "top_k": 0}}, "strategy.top_k", "0"),
    ({"max_tokens": -1}, "max_tokens", "-1"),
    ({"repetition_penalty": 0}, "repetition_penalty", "0"),
]


@pytest.mark.parametrize("path,body,prefix", SAMPLING_ROUTES)
@pytest.mark.parametrize("params,field,value", BAD_SAMPLING)
def test_sampling_params_out_of_range_are_400_naming_the_field(
    client, path, body, prefix, params, field, value
):
    r = client.post(path, json={**body, prefix: params})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == f"{prefix}.{field}"
    assert f"{prefix}.{field}: Input should be" in r.json()["detail"]
    assert f"(got {value})" in r.json()["detail"]


def test_sampling_params_in_range_pass(client):
    for params in (
        {"strategy": {"type": "top_p", "temperature": 0, "top_p": 1}},
        {"strategy": {"type": "top_k", "top_k": 1}, "max_tokens": 0},
        {"strategy": {"type": "greedy"}, "max_tokens": 5, "repetition_penalty": 1.2},
    ):
        r = client.post("/v1/inference/chat-completion", json={**CHAT, "sampling_params": params})
        assert r.status_code == 200, r.json()


BAD_OPENAI = [
    ("temperature", -1),
    ("temperature", 2.5),
    ("top_p", 0),
    ("top_p", 1.01),
    ("max_tokens", 0),
    ("n", 0),
    ("frequency_penalty", 3),
    ("presence_penalty", -2.5),
]


@pytest.mark.parametrize("prefix", ["/v1", "/v1/openai/v1"])
@pytest.mark.parametrize("field,value", BAD_OPENAI)
def test_openai_sampling_out_of_range_is_400_naming_the_field(client, prefix, field, value):
    for path, body in (
        ("/chat/completions", OPENAI_CHAT),
        ("/completions", {"model": "m", "prompt": "hi"}),
    ):
        r = client.post(prefix + path, json={**body, field: value})
        assert r.status_code == 400, (path, r.json())
        assert r.json()["error"]["param"] == field
    r = client.post(prefix + "/chat/completions", json={**OPENAI_CHAT, "max_completion_tokens": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_completion_tokens"
    ok = {"temperature": 0, "top_p": 1, "max_tokens": 1, "n": 1, "frequency_penalty": -2}
    assert client.post(prefix + "/chat/completions", json={**OPENAI_CHAT, **ok}).status_code == 200


def test_unknown_routes_answer_in_the_stacks_error_shape(client):
    r = client.get("/v1/no/such/route")
    assert r.status_code == 404
    message = "no route GET /v1/no/such/route; GET /v1/inspect/routes lists the routes"
    assert r.json() == {
        "error": {"type": "not_found_error", "message": message},
        "detail": message,
    }
    r = client.delete("/v1/health")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json()["error"]["type"] == "method_not_allowed"
    assert "DELETE /v1/health" in r.json()["detail"]


def test_models_routes(client):
    listing = client.get("/v1/models").json()
    assert listing["data"][0]["identifier"] == "m" and listing["data"][0]["id"] == "m"
    assert client.get("/v1/openai/v1/models").json()["data"][0]["id"] == "m"
    assert client.get("/v1/models/m").json()["provider_id"] == "echo"
    assert client.get("/v1/models/nope").status_code == 404
    r = client.post("/v1/models", json={"model_id": "org/with/slashes", "provider_id": "echo"})
    assert r.status_code == 200
    assert client.get("/v1/models/org/with/slashes").status_code == 200
    assert client.delete("/v1/models/org/with/slashes").status_code == 200
    assert client.get("/v1/models/org/with/slashes").status_code == 404
    assert client.delete("/v1/models/org/with/slashes").status_code == 404


def test_unserved_api_is_404(client):
    assert client.get("/v1/nothing-here").status_code == 404


def test_providers_redact_secrets(tmp_path):
    stack = parse_config(
        {
            "version": 2,
            "image_name": "gw",
            "apis": ["inference"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "echo",
                        "provider_type": "remote::echo",
                        "module": "stackray_echo",
                        "config": {"prefix": "x"},
                    }
                ]
            },
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    with TestClient(create_gateway_app(stack, {})) as c:
        info = c.get("/v1/providers/echo").json()
        assert info["config"] == {"prefix": "x"}
        assert c.get("/v1/providers").json()["data"][0]["provider_type"] == "remote::echo"


def test_provider_failure_is_502_naming_provider(client):
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "__fail__"}]},
    )
    assert r.status_code == 502
    assert "provider 'echo'" in r.json()["detail"] and "failure requested" in r.json()["detail"]


def test_provider_failure_mid_stream_ends_stream_with_error_event(client):
    r = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "__fail__"}], "stream": True},
    )
    assert r.status_code == 502


def test_provider_data_header_reaches_the_provider(client):
    body = {"model_id": "m", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"X-LlamaStack-Provider-Data": '{"echo_prefix": "custom: "}'}
    r = client.post("/v1/inference/chat-completion", json=body, headers=headers)
    assert r.json()["completion_message"]["content"] == "custom: hi"
    streamed = client.post(
        "/v1/inference/chat-completion", json={**body, "stream": True}, headers=headers
    )
    assert "custom:" in streamed.text
    assert (
        client.post("/v1/inference/chat-completion", json=body).json()["completion_message"][
            "content"
        ]
        == "echo: hi"
    )


def test_bad_provider_data_header_is_400(client):
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-LlamaStack-Provider-Data": "{not json"},
    )
    assert r.status_code == 400 and "X-LlamaStack-Provider-Data" in r.json()["detail"]


def test_health_is_503_until_every_api_deployment_answers(tmp_path):
    class NotReady:
        async def health(self) -> None:
            raise RuntimeError("still loading")

    stack = parse_config(
        {
            "version": 2,
            "image_name": "gw",
            "apis": ["inference"],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    with TestClient(
        create_gateway_app(stack, {"inference": local_client(NotReady(), "inference")})
    ) as c:
        r = c.get("/v1/health")
        assert r.status_code == 503 and r.json() == {"status": "Error"}


def test_an_unavailable_stack_says_when_to_come_back(tmp_path):
    class Restarting:
        async def list_models(self):
            raise type("ActorUnavailableError", (Exception,), {})("replica restarting")

    stack = parse_config(
        {
            "version": 2,
            "image_name": "gw",
            "apis": ["inference"],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    with TestClient(
        create_gateway_app(stack, {"inference": local_client(Restarting(), "inference")})
    ) as c:
        r = c.get("/v1/models")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert "restarting" in r.json()["detail"]


def test_each_request_error_is_one_log_line(client, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="stackray.gateway")
    client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "ghost", "messages": [{"role": "user", "content": "hi"}]},
    )
    client.get("/v1/no/such/route")
    client.post(
        "/v1/inference/chat-completion", json={**CHAT, "sampling_params": {"max_tokens": -1}}
    )
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "stackray.gateway"]
    assert lines[0] == (
        "INFO",
        "POST /v1/inference/chat-completion -> 404 not_found_error: model 'ghost' not found; "
        "GET /v1/models lists the registered models",
    )
    assert lines[1][1].startswith("GET /v1/no/such/route -> 404 not_found_error: no route")
    assert lines[2][1].startswith(
        "POST /v1/inference/chat-completion -> 400 invalid_request_error: invalid request: "
        "sampling_params.max_tokens"
    )
    assert len(lines) == 3
    assert not any(r.exc_info for r in caplog.records)


def test_a_server_side_failure_is_a_warning_line(client, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="stackray.gateway")
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "__fail__"}]},
    )
    assert r.status_code == 502
    [record] = [r for r in caplog.records if r.name == "stackray.gateway"]
    assert record.levelname == "WARNING" and "-> 502 provider_error" in record.getMessage()


def test_stackray_log_level_comes_from_the_environment(monkeypatch):
    import logging

    from stackray.deployments.logs import configure_stackray_logging

    logger = logging.getLogger("stackray")
    before = logger.level, logger.propagate, list(logger.handlers)
    try:
        monkeypatch.setenv("STACKRAY_LOG_LEVEL", "debug")
        configure_stackray_logging()
        assert logger.level == logging.DEBUG
        monkeypatch.setenv("STACKRAY_LOG_LEVEL", "warning")
        configure_stackray_logging()
        assert logger.level == logging.WARNING
        assert sum(getattr(h, "_stackray", False) for h in logger.handlers) == 1
        # Without the variable, a level set before (the telemetry config's) is kept.
        monkeypatch.delenv("STACKRAY_LOG_LEVEL")
        logger.setLevel(logging.ERROR)
        configure_stackray_logging()
        assert logger.level == logging.ERROR
        logger.setLevel(logging.NOTSET)
        configure_stackray_logging()
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before[0])
        logger.propagate = before[1]
        logger.handlers[:] = before[2]
