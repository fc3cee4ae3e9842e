"""`remote::bedrock`: AWS Bedrock Guardrails through boto3's `apply_guardrail`.

The last message decides the source: an assistant message is checked as the model's
OUTPUT (the conversation's assistant messages), anything else as INPUT (its user and tool
messages). A guardrail that intervenes is a violation carrying its blocked-message text,
the policies that fired and the full assessments.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stackray.api.common import JsonValue, Message, interleaved_content_as_str
from stackray.api.datatypes import Api
from stackray.api.errors import (
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ServiceUnavailableError,
    StackError,
)
from stackray.api.safety import RunShieldResponse, SafetyViolation, Shield, ViolationLevel
from stackray.providers.remote.safety.bedrock.config import BedrockSafetyConfig
from stackray.runtime.resolver import ProviderContext

INTERVENED = "GUARDRAIL_INTERVENED"


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def fired_policies(assessments: list[dict[str, Any]]) -> list[str]:
    """The names of what fired in a guardrail's assessments: content filter types
    (``violence``, ``prompt_attack`` ...), denied topics (``topic:<name>``), words,
    sensitive information types (``pii:<type>``, ``regex:<name>``), grounding checks."""
    found: list[str] = []

    def add(name: str) -> None:
        if name not in found:
            found.append(name)

    for assessment in assessments:
        for topic in assessment.get("topicPolicy", {}).get("topics", []):
            if topic.get("action") != "NONE":
                add(f"topic:{topic.get('name')}")
        for f in assessment.get("contentPolicy", {}).get("filters", []):
            if f.get("action") != "NONE" or f.get("detected"):
                add(str(f.get("type", "")).lower())
        words = assessment.get("wordPolicy", {})
        if any(w.get("action") != "NONE" for w in words.get("customWords", [])):
            add("custom_word")
        for w in words.get("managedWordLists", []):
            if w.get("action") != "NONE":
                add(str(w.get("type", "managed_word")).lower())
        info = assessment.get("sensitiveInformationPolicy", {})
        for pii in info.get("piiEntities", []):
            if pii.get("action") != "NONE":
                add(f"pii:{str(pii.get('type')).lower()}")
        for regex in info.get("regexes", []):
            if regex.get("action") != "NONE":
                add(f"regex:{regex.get('name')}")
        for g in assessment.get("contextualGroundingPolicy", {}).get("filters", []):
            if g.get("action") != "NONE":
                add(f"grounding:{str(g.get('type')).lower()}")
    return found


class BedrockSafetyAdapter:
    def __init__(
        self, config: BedrockSafetyConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.context = context
        self.client: Any = None

    async def initialize(self) -> None:
        import boto3
        from botocore.config import Config

        c = self.config
        session = boto3.Session(
            profile_name=c.profile_name,
            region_name=c.region_name,
            aws_access_key_id=_secret(c.aws_access_key_id),
            aws_secret_access_key=_secret(c.aws_secret_access_key),
            aws_session_token=_secret(c.aws_session_token),
        )
        self.client = session.client(
            "bedrock-runtime",
            endpoint_url=c.endpoint_url,
            config=Config(
                connect_timeout=c.connect_timeout,
                read_timeout=c.read_timeout,
                retries={"max_attempts": c.max_attempts, "mode": "standard"},
            ),
        )

    def _guardrail(
        self, shield: Shield, params: dict[str, JsonValue] | None = None
    ) -> tuple[str, str]:
        merged = {**(shield.params or {}), **(params or {})}
        identifier = (
            merged.get("guardrail_identifier")
            or merged.get("guardrailIdentifier")
            or self.config.guardrail_identifier
            or shield.provider_resource_id
            or shield.identifier
        )
        version = (
            merged.get("guardrail_version")
            or merged.get("guardrailVersion")
            or self.config.guardrail_version
        )
        if not isinstance(identifier, str) or not isinstance(version, str | int):
            raise BadRequestError(
                "guardrail_identifier must be a string and guardrail_version a string or number",
                field="params",
            )
        return identifier, str(version)

    async def register_shield(self, shield: Shield) -> Shield:
        self._guardrail(shield)
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse:
        identifier, version = self._guardrail(shield, params)
        output = messages[-1].role == "assistant"
        roles = ("assistant",) if output else ("user", "tool")
        content = [
            {"text": {"text": text}}
            for m in messages
            if m.role in roles and (text := interleaved_content_as_str(m.content)).strip()
        ]
        if not content:
            return RunShieldResponse(violation=None)
        response = await asyncio.to_thread(
            self._apply,
            guardrailIdentifier=identifier,
            guardrailVersion=version,
            source="OUTPUT" if output else "INPUT",
            content=content,
        )
        if response.get("action") != INTERVENED:
            return RunShieldResponse(violation=None)
        assessments = response.get("assessments", [])
        policies = fired_policies(assessments)
        texts = [o.get("text", "") for o in response.get("outputs", []) if o.get("text")]
        metadata: dict[str, JsonValue] = {
            "violation_type": ",".join(policies) or "guardrail",
            "guardrail_identifier": identifier,
            "guardrail_version": version,
            "action": response.get("action"),
            "assessments": assessments,
        }
        if response.get("actionReason"):
            metadata["action_reason"] = response["actionReason"]
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level=ViolationLevel.error,
                user_message=" ".join(texts) or "The guardrail blocked this content.",
                metadata=metadata,
            )
        )

    def _apply(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return dict(self.client.apply_guardrail(**kwargs))
        except ClientError as e:
            raise client_error(e, kwargs["guardrailIdentifier"]) from None
        except NoCredentialsError:
            raise ProviderError(
                "no AWS credentials: set them in the provider's config, the environment or a profile",
                provider_id=self.context.provider_id,
            ) from None
        except BotoCoreError as e:
            raise ProviderError(
                f"{type(e).__name__}: {e}", provider_id=self.context.provider_id
            ) from None


def client_error(e: Any, guardrail: str) -> StackError:
    """A Bedrock error as the StackError a client sees."""
    error = e.response.get("Error", {})
    code = error.get("Code", "")
    message = f"Bedrock {code}: {error.get('Message', '')}"
    if code == "ResourceNotFoundException":
        return NotFoundError(f"guardrail {guardrail!r} not found ({message})", field="shield_id")
    if code == "ValidationException":
        return BadRequestError(message)
    if code == "AccessDeniedException":
        return PermissionDeniedError(message)
    if code in (
        "ThrottlingException",
        "ServiceQuotaExceededException",
        "ServiceUnavailableException",
    ):
        return ServiceUnavailableError(message)
    return ProviderError(message, provider_id="bedrock")
