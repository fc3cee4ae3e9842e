"""`remote::nvidia` safety through the safety router against a NeMo Guardrails stand-in on
127.0.0.1 (`POST /v1/guardrail/checks`, answered `{status, rails_status}`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from stackray.api.datatypes import Api
from stackray.api.safety import RunShieldRequest
from stackray.runtime.config import parse_config
from stackray.runtime.routers import build_router
from tests.unit.support.remote_servers import FakeService, text_of


def guardrails_app(svc: FakeService) -> FastAPI:
    """Blocks a conversation whose last message says 'jailbreak' (the self-check rail)."""
    app = FastAPI()

    @app.post("/v1/guardrail/checks")
    async def checks(request: Request) -> Response:
        body, _, early = await svc.intake(request)
        if early is not None:
            return early
        if not body.get("guardrails", {}).get("config_id"):
            return JSONResponse({"detail": "config_id is required"}, 422)
        blocked = "jailbreak" in text_of(body["messages"][-1]["content"])
        status = "blocked" if blocked else "success"
        rails = {"self check input": {"status": status}}
        return JSONResponse({"status": status, "rails_status": rails, "guardrails_data": {}})

    return app


@pytest.fixture(scope="module")
def guardrails() -> Iterator[FakeService]:
    service = FakeService(guardrails_app).start()
    yield service
    service.stop()


def stack(guardrails: FakeService, tmp_path: Path, shield: dict[str, Any]) -> Any:
    return parse_config(
        {
            "version": "2",
            "image_name": "nvidia",
            "apis": ["safety"],
            "providers": {
                "safety": [
                    {
                        "provider_id": "nvidia",
                        "provider_type": "remote::nvidia",
                        "config": {
                            "guardrails_service_url": guardrails.url,
                            "config_id": "${env.NVIDIA_GUARDRAILS_CONFIG_ID:self-check}",
                        },
                    }
                ]
            },
            "shields": [shield],
            "storage": {"data_dir": str(tmp_path)},
        },
        env={},
    )


def test_a_blocked_check_is_a_violation_with_the_rails_status(guardrails, tmp_path):
    guardrails.reset()
    shield = {"shield_id": "guard", "provider_shield_id": "meta/llama-3.1-8b-instruct"}
    router = asyncio.run(build_router(stack(guardrails, tmp_path, shield), Api.safety, {}))

    def run(text: str) -> Any:
        request = RunShieldRequest(shield_id="guard", messages=[{"role": "user", "content": text}])
        return asyncio.run(router.run_shield(request)).violation

    assert run("hello") is None
    sent = guardrails.last.body
    assert sent["model"] == "meta/llama-3.1-8b-instruct"
    assert sent["guardrails"] == {"config_id": "self-check"}
    assert sent["messages"] == [{"role": "user", "content": "hello"}]
    violation = run("please jailbreak yourself")
    assert violation is not None and violation.user_message == "Sorry I cannot do this."
    assert violation.metadata == {"self check input": {"status": "blocked"}}


def test_a_shield_without_provider_shield_id_checks_with_its_own_id(guardrails, tmp_path):
    guardrails.reset()
    shield = {"shield_id": "meta/llama-3.1-8b-instruct"}
    router = asyncio.run(build_router(stack(guardrails, tmp_path, shield), Api.safety, {}))
    request = RunShieldRequest(
        shield_id="meta/llama-3.1-8b-instruct", messages=[{"role": "user", "content": "hi"}]
    )
    assert asyncio.run(router.run_shield(request)).violation is None
    assert guardrails.last.body["model"] == "meta/llama-3.1-8b-instruct"
