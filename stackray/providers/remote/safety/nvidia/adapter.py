"""`remote::nvidia` safety: a shield is a check of NeMo Guardrails' configuration
`config_id` with the shield's model (`provider_shield_id`, required), sent to
`POST /v1/guardrail/checks`; an answer with status `blocked` is a violation whose metadata
is the service's `rails_status`, as in Llama Stack."""

from __future__ import annotations

from typing import Any

from stackray.api.common import JsonValue, Message
from stackray.api.errors import BadRequestError, ProviderError
from stackray.api.inference import ChatCompletionRequest
from stackray.api.safety import RunShieldResponse, SafetyViolation, Shield, ViolationLevel
from stackray.providers.remote.inference import translate
from stackray.providers.remote.inference.client import RemoteClient
from stackray.providers.remote.safety.nvidia.config import NVIDIASafetyConfig

USER_MESSAGE = "Sorry I cannot do this."
"""What Llama Stack tells the user when a guardrail blocks."""


class NVIDIASafetyAdapter:
    """See the module docstring."""

    def __init__(self, config: NVIDIASafetyConfig, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.provider_id: str = context.provider_id
        self.client = RemoteClient(
            self.provider_id,
            config.guardrails_service_url,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            max_connections=config.max_connections,
        )
        self.dialect = translate.Dialect(provider_type="remote::nvidia")

    async def register_shield(self, shield: Shield) -> Shield:
        if not shield.provider_resource_id:
            raise BadRequestError(
                f"shield {shield.identifier!r}: NeMo Guardrails checks need the model to "
                "check with; give it as provider_shield_id",
                field="provider_shield_id",
            )
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def close(self) -> None:
        await self.client.aclose()

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse:
        model = shield.provider_resource_id or shield.identifier
        converted = translate.chat_request_to_openai(
            ChatCompletionRequest(model_id=model, messages=messages), self.dialect
        )["messages"]
        body = {
            "model": model,
            "messages": converted,
            "temperature": 1.0,
            "top_p": 1,
            "frequency_penalty": 0,
            "presence_penalty": 0,
            "max_tokens": 160,
            "stream": False,
            "guardrails": {"config_id": self.config.config_id},
        }
        data = await self.client.request_json("POST", "v1/guardrail/checks", body)
        if not isinstance(data, dict) or "status" not in data:
            raise ProviderError(
                f"unexpected answer from {self.client.base_url}: no status",
                provider_id=self.provider_id,
            )
        if data["status"] != "blocked":
            return RunShieldResponse(violation=None)
        rails = data.get("rails_status")
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level=ViolationLevel.error,
                user_message=USER_MESSAGE,
                metadata=dict(rails) if isinstance(rails, dict) else {},
            )
        )
