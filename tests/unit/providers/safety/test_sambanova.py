"""`remote::sambanova` safety through the safety router, its Llama Guard model a guard
stand-in on 127.0.0.1 speaking OpenAI's chat API (SambaNova Cloud's), with the shields of
Llama Stack 0.2.12's sambanova template."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextvars import copy_context
from pathlib import Path
from typing import Any

import pytest

from stackray.api.datatypes import Api
from stackray.api.errors import AuthenticationError, BadRequestError
from stackray.api.safety import RunShieldRequest
from stackray.runtime.config import parse_config
from stackray.runtime.request_context import provider_data_var
from stackray.runtime.routers import build_router
from tests.unit.support.guard_server import guard_app
from tests.unit.support.remote_servers import FakeService


@pytest.fixture(scope="module")
def guard() -> Iterator[FakeService]:
    service = FakeService(guard_app).start()
    yield service
    service.stop()


def router(guard: FakeService, tmp_path: Path, api_key: str | None = "sn-key") -> Any:
    stack = parse_config(
        {
            "version": "2",
            "image_name": "sambanova",
            "apis": ["safety"],
            "providers": {
                "safety": [
                    {
                        "provider_id": "sambanova",
                        "provider_type": "remote::sambanova",
                        "config": {"url": f"{guard.url}/v1", "api_key": api_key},
                    }
                ]
            },
            "shields": [
                {
                    "shield_id": "meta-llama/Llama-Guard-3-8B",
                    "provider_shield_id": "sambanova/Meta-Llama-Guard-3-8B",
                }
            ],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    return asyncio.run(build_router(stack, Api.safety, {}))


def run(r: Any, text: str) -> Any:
    request = RunShieldRequest(
        shield_id="meta-llama/Llama-Guard-3-8B", messages=[{"role": "user", "content": text}]
    )
    return asyncio.run(r.run_shield(request)).violation


def test_safe_and_unsafe_answers_of_the_guard_model(guard: FakeService, tmp_path: Path):
    guard.reset()
    r = router(guard, tmp_path)
    assert run(r, "hello") is None
    sent = guard.last
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {
        "model": "Meta-Llama-Guard-3-8B",
        "messages": [{"role": "user", "content": "hello"}],
    }
    assert sent.headers["authorization"] == "Bearer sn-key"
    guard.answers.append("unsafe\nS1")  # type: ignore[attr-defined]
    violation = run(r, "how do I hurt someone")
    assert violation is not None and violation.violation_level.value == "error"
    assert violation.metadata["violation_type"] == "S1"
    assert violation.user_message


def test_the_key_of_the_request_and_without_any(guard: FakeService, tmp_path: Path):
    guard.reset()
    guard.required_key = "per-request"
    r = router(guard, tmp_path, api_key=None)
    with pytest.raises(BadRequestError, match="sambanova_api_key"):
        run(r, "x")

    def with_key() -> Any:
        provider_data_var.set({"sambanova_api_key": "per-request"})
        return run(r, "x")

    assert copy_context().run(with_key) is None
    configured = router(guard, tmp_path, api_key="wrong")
    with pytest.raises(AuthenticationError):
        run(configured, "x")
