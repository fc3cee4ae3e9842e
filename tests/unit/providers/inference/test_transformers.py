"""`inline::transformers` behind the gateway, in one process, with the real
SmolLM2-135M-Instruct: what a client sends is checked, and errors name its fields."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from stackray.deployments.gateway import create_gateway_app  # noqa: E402
from stackray.runtime.config import parse_config  # noqa: E402
from stackray.runtime.graph import build_local_stack  # noqa: E402

MODEL = "SmolLM2-135M-Instruct"
LONG = "word " * 9000  # past the model's 8192-token context
CHAT = {"model_id": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    stack = parse_config(
        {
            "version": 2,
            "image_name": "transformers-test",
            "apis": ["inference"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "transformers",
                        "provider_type": "inline::transformers",
                        "config": {"device": "cpu", "default_max_tokens": 8},
                    }
                ]
            },
            "models": [
                {
                    "model_id": MODEL,
                    "provider_id": "transformers",
                    "provider_model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
                }
            ],
            "storage": {"data_dir": str(tmp_path_factory.mktemp("data"))},
        }
    )
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as c:
        yield c


def error(r) -> tuple[int, str, str]:
    body = r.json()
    return r.status_code, body["error"].get("param"), body["error"]["message"]


def test_a_too_long_prompt_names_the_field_it_came_from(client):
    status, field, message = error(
        client.post(
            "/v1/inference/chat-completion",
            json={"model_id": MODEL, "messages": [{"role": "user", "content": LONG}]},
        )
    )
    assert (status, field) == (400, "messages")
    assert message.startswith("messages too long: ") and "8192" in message
    status, field, _ = error(
        client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": LONG}]},
        )
    )
    assert (status, field) == (400, "messages")
    status, field, _ = error(
        client.post("/v1/completions", json={"model": MODEL, "prompt": LONG, "max_tokens": 2})
    )
    assert (status, field) == (400, "prompt")
    status, field, _ = error(
        client.post("/v1/inference/completion", json={"model_id": MODEL, "content": LONG})
    )
    assert (status, field) == (400, "content")


def test_a_short_chat_still_answers(client):
    r = client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
    )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"


def test_a_grammar_response_format_constrains_the_answer(client):
    for rules, allowed in (
        ({"root": '"yes" | "no"'}, {"yes", "no"}),
        ({"root": '"colour: " colour', "colour": '"red" | "green" | "blue"'}, None),
    ):
        r = client.post(
            "/v1/inference/chat-completion",
            json={
                "model_id": MODEL,
                "messages": [{"role": "user", "content": "Name a colour, or say yes."}],
                "response_format": {"type": "grammar", "bnf": rules},
                "sampling_params": {"max_tokens": 10},
            },
        )
        assert r.status_code == 200, r.json()
        text = r.json()["completion_message"]["content"]
        if allowed is not None:
            assert text in allowed
        else:
            assert text in ("colour: red", "colour: green", "colour: blue")


def test_a_bad_grammar_is_a_400_naming_it(client):
    for rules, field in (
        ({"start": '"x"'}, "response_format.bnf"),
        ({"root": '"x" | '}, "response_format.bnf"),
        ({"root": 3}, "response_format.bnf.root"),
    ):
        r = client.post(
            "/v1/inference/chat-completion",
            json={**CHAT, "response_format": {"type": "grammar", "bnf": rules}},
        )
        assert r.status_code == 400, r.json()
        assert r.json()["error"]["param"] == field
