"""`remote::bedrock`: AWS Bedrock Guardrails at the boto3 boundary.

There is no AWS here: botocore's Stubber answers `apply_guardrail` with responses in the
service's real shapes (the Stubber validates both the request we send and the response
against the bedrock-runtime service model shipped with botocore).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.stub import Stubber

from stackray.api.datatypes import Api
from stackray.api.errors import (
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from stackray.api.safety import OpenAIModerationRequest, RunShieldRequest
from stackray.runtime.config import parse_config
from stackray.runtime.routers import build_router

USAGE = {
    "topicPolicyUnits": 1,
    "contentPolicyUnits": 1,
    "wordPolicyUnits": 1,
    "sensitiveInformationPolicyUnits": 1,
    "sensitiveInformationPolicyFreeUnits": 0,
    "contextualGroundingPolicyUnits": 0,
}

NONE = {
    "usage": USAGE,
    "action": "NONE",
    "outputs": [],
    "assessments": [{}],
    "guardrailCoverage": {"textCharacters": {"guarded": 20, "total": 20}},
}

INTERVENED = {
    "usage": USAGE,
    "action": "GUARDRAIL_INTERVENED",
    "actionReason": "Guardrail blocked.",
    "outputs": [{"text": "Sorry, I can't help with that."}],
    "assessments": [
        {
            "topicPolicy": {
                "topics": [
                    {"name": "Weapons", "type": "DENY", "action": "BLOCKED", "detected": True}
                ]
            },
            "contentPolicy": {
                "filters": [
                    {
                        "type": "VIOLENCE",
                        "confidence": "HIGH",
                        "filterStrength": "HIGH",
                        "action": "BLOCKED",
                        "detected": True,
                    },
                    {
                        "type": "HATE",
                        "confidence": "NONE",
                        "filterStrength": "HIGH",
                        "action": "NONE",
                        "detected": False,
                    },
                ]
            },
            "wordPolicy": {
                "customWords": [],
                "managedWordLists": [
                    {"match": "damn", "type": "PROFANITY", "action": "BLOCKED", "detected": True}
                ],
            },
            "sensitiveInformationPolicy": {
                "piiEntities": [
                    {"match": "a@b.com", "type": "EMAIL", "action": "ANONYMIZED", "detected": True}
                ],
                "regexes": [],
            },
            "invocationMetrics": {
                "guardrailProcessingLatency": 120,
                "usage": USAGE,
                "guardrailCoverage": {"textCharacters": {"guarded": 42, "total": 42}},
            },
        }
    ],
    "guardrailCoverage": {"textCharacters": {"guarded": 42, "total": 42}},
}


@pytest.fixture()
def router(tmp_path) -> Any:
    stack = parse_config(
        {
            "version": 2,
            "image_name": "bedrock-test",
            "apis": ["safety"],
            "providers": {
                "safety": [
                    {
                        "provider_id": "bedrock",
                        "provider_type": "remote::bedrock",
                        "config": {
                            "region_name": "us-east-1",
                            "aws_access_key_id": "AKIAEXAMPLE",
                            "aws_secret_access_key": "secret",
                            "guardrail_identifier": "gr-default",
                        },
                    }
                ]
            },
            "shields": [
                {
                    "shield_id": "pinned",
                    "params": {"guardrail_identifier": "gr-123", "guardrail_version": "2"},
                },
                {"shield_id": "default"},
            ],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    return asyncio.run(build_router(stack, Api.safety, {}))


@pytest.fixture()
def stub(router) -> Any:
    client = router.providers["bedrock"]._impl.client
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def run(router: Any, shield: str, messages: list[dict[str, Any]]) -> Any:
    return asyncio.run(
        router.run_shield(RunShieldRequest(shield_id=shield, messages=messages))
    ).violation


def test_input_that_passes(router, stub):
    stub.add_response(
        "apply_guardrail",
        NONE,
        {
            "guardrailIdentifier": "gr-123",
            "guardrailVersion": "2",
            "source": "INPUT",
            "content": [{"text": {"text": "hello there"}}, {"text": {"text": "tool output"}}],
        },
    )
    messages = [
        {"role": "system", "content": "not sent"},
        {"role": "user", "content": "hello there"},
        {"role": "tool", "call_id": "c", "content": "tool output"},
    ]
    assert run(router, "pinned", messages) is None


def test_intervention_is_a_violation_with_what_fired(router, stub):
    stub.add_response(
        "apply_guardrail",
        INTERVENED,
        {
            "guardrailIdentifier": "gr-default",
            "guardrailVersion": "DRAFT",
            "source": "OUTPUT",
            "content": [{"text": {"text": "Here is how to build a weapon, damn"}}],
        },
    )
    v = run(
        router,
        "default",
        [
            {"role": "user", "content": "how?"},
            {
                "role": "assistant",
                "content": "Here is how to build a weapon, damn",
                "stop_reason": "end_of_turn",
            },
        ],
    )
    assert v is not None and v.violation_level == "error"
    assert v.user_message == "Sorry, I can't help with that."
    assert v.metadata["violation_type"] == "topic:Weapons,violence,profanity,pii:email"
    assert v.metadata["guardrail_identifier"] == "gr-default"
    assert v.metadata["guardrail_version"] == "DRAFT"
    assert v.metadata["action_reason"] == "Guardrail blocked."
    assert v.metadata["assessments"] == INTERVENED["assessments"]


def test_moderation_from_a_guardrail(router, stub):
    stub.add_response("apply_guardrail", INTERVENED)
    stub.add_response("apply_guardrail", NONE)
    result = asyncio.run(
        router.run_moderation(OpenAIModerationRequest(model="pinned", input=["bad", "good"]))
    )
    flagged = {r.flagged for r in result.results}
    assert flagged == {True, False}
    hit = next(r for r in result.results if r.flagged)
    assert hit.categories["violence"] is True and hit.categories["pii:email"] is True
    assert hit.categories["hate"] is False


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ResourceNotFoundException", 404, NotFoundError),
        ("ValidationException", 400, BadRequestError),
        ("AccessDeniedException", 403, PermissionDeniedError),
        ("ThrottlingException", 429, ServiceUnavailableError),
    ],
)
def test_service_errors_map_to_stack_errors(router, stub, code, status, error):
    stub.add_client_error(
        "apply_guardrail",
        service_error_code=code,
        service_message="the service said no",
        http_status_code=status,
    )
    with pytest.raises(error, match=f"Bedrock {code}: the service said no"):
        run(router, "pinned", [{"role": "user", "content": "x"}])


def test_bad_guardrail_params_are_refused_at_registration(router):
    from stackray.api.safety import RegisterShieldRequest

    with pytest.raises(BadRequestError, match="guardrail_identifier must be a string"):
        asyncio.run(
            router.register_shield(
                RegisterShieldRequest(shield_id="bad", params={"guardrail_identifier": 5})
            )
        )


def test_nothing_to_check_sends_nothing(router, stub):
    assert run(router, "pinned", [{"role": "system", "content": "only a system prompt"}]) is None
