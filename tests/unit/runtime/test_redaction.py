"""Secrets stay out of `/v1/providers`, error answers, logs and the span store: a remote
provider whose service quotes the key it was sent, with the key from the config and from
the request's provider data; then every captured log line and the span database are
grepped for the keys."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest
from fastapi.testclient import TestClient

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime import redaction, telemetry
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.redaction import MASK, redact, redact_text
from stackray.runtime.request_context import RequestContext, use_context
from tests.unit.support.remote_servers import Failure

CONFIG_KEY = "sk-config-secret-0001"
REQUEST_KEY = "sk-request-secret-0002"
JWKS_TOKEN = "jwks-service-account-token-0003"


def test_redact_masks_secret_keys_and_keeps_the_rest():
    config = {
        "url": "http://x/v1",
        "api_key": "abc",
        "nested": {"client_secret": "s", "key_recheck_period": 60, "token_url": "http://t"},
        "headers": [{"Authorization": "Bearer q"}],
    }
    assert redact(config) == {
        "url": "http://x/v1",
        "api_key": MASK,
        "nested": {"client_secret": MASK, "key_recheck_period": 60, "token_url": "http://t"},
        "headers": [{"Authorization": MASK}],
    }


def test_redact_text_masks_bearer_tokens_pairs_and_provider_data():
    assert (
        redact_text("sent Authorization: Bearer abc.def-ghi")
        == f"sent Authorization: Bearer {MASK}"
    )
    assert (
        redact_text('{"api_key": "zzz-123"} token=qqq&x=1')
        == f'{{"api_key": "{MASK}"}} token={MASK}&x=1'
    )
    with use_context(RequestContext(provider_data={"together_api_key": "tg-secret-xyz"})):
        assert (
            redact_text("upstream said tg-secret-xyz is wrong") == f"upstream said {MASK} is wrong"
        )
    assert redact_text("nothing to hide") == "nothing to hide"


@pytest.fixture()
def stack(tmp_path, openai_server):
    raw = {
        "version": 2,
        "image_name": "redaction",
        "apis": ["inference", "telemetry"],
        "providers": {
            "inference": [
                {
                    "provider_id": "openai",
                    "provider_type": "remote::openai",
                    "config": {"url": f"{openai_server.url}/v1", "api_key": CONFIG_KEY},
                }
            ],
            "telemetry": [
                {
                    "provider_id": "otel",
                    "provider_type": "inline::meta-reference",
                    "config": {"export_interval_ms": 50},
                }
            ],
        },
        "models": [{"model_id": "served-model", "provider_id": "openai"}],
        "server": {
            "auth": {
                "provider_type": "oauth2_token",
                "config": {"jwks": {"uri": "http://127.0.0.1:9/jwks", "token": JWKS_TOKEN}},
            }
        },
        "storage": {"data_dir": str(tmp_path)},
    }
    # The JWKS token is one of the config's secrets to mask; requests go unauthenticated
    # (what this test is about is what leaves the stack, not who calls it).
    redaction.install(parse_config(raw))
    del raw["server"]
    stack = parse_config(raw)
    telemetry.configure(stack, "local")
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as client:
        yield client
    telemetry.shutdown()


def test_secrets_never_reach_answers_logs_or_spans(stack, openai_server, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    providers = stack.get("/v1/providers").text
    assert CONFIG_KEY not in providers and MASK in providers

    chat = {"model": "served-model", "messages": [{"role": "user", "content": "hi"}]}
    # The service quotes the key it was sent in its error, as some do.
    openai_server.fail(
        Failure(status=400, body={"error": {"message": f"key {CONFIG_KEY} is not valid here"}})
    )
    r = stack.post("/v1/openai/v1/chat/completions", json=chat)
    assert r.status_code == 400 and CONFIG_KEY not in r.text and MASK in r.text
    assert openai_server.last.headers["authorization"] == f"Bearer {CONFIG_KEY}"  # it was sent

    openai_server.fail(
        Failure(status=400, body={"error": {"message": f"key {REQUEST_KEY} is not valid"}})
    )
    header = {"X-LlamaStack-Provider-Data": json.dumps({"openai_api_key": REQUEST_KEY})}
    r = stack.post("/v1/openai/v1/chat/completions", json=chat, headers=header)
    assert r.status_code == 400 and REQUEST_KEY not in r.text
    assert openai_server.last.headers["authorization"] == f"Bearer {REQUEST_KEY}"

    # Any library logging a secret, ours or not, has it masked.
    logging.getLogger("some.library").warning("retrying with key %s", CONFIG_KEY)
    logging.getLogger("stackray.gateway").info("jwks token %s", JWKS_TOKEN)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "retrying with key " + MASK in logged
    for secret in (CONFIG_KEY, REQUEST_KEY, JWKS_TOKEN):
        assert secret not in logged
        assert secret not in caplog.text

    telemetry.force_flush()
    with sqlite3.connect(tmp_path / "telemetry" / "trace_store.db") as db:
        spans = "\n".join(db.iterdump())
    assert "chat_completion" in spans and "BadRequestError" in spans  # the spans are there
    for secret in (CONFIG_KEY, REQUEST_KEY):
        assert secret not in spans
