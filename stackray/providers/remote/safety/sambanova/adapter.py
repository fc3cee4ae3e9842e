"""`remote::sambanova` safety: a shield is a Llama Guard model on SambaNova Cloud.

The conversation goes to the model as it is (SambaNova applies the guard's prompt); an
answer whose text says "unsafe" is a violation, its last line (the categories, e.g.
``S1``) the `violation_type`, as in Llama Stack. A shield's `provider_shield_id` may carry
Llama Stack's routing prefix (``sambanova/Meta-Llama-Guard-3-8B``): the model SambaNova is
asked for is the name after it.
"""

from __future__ import annotations

from typing import Any

from stackray.api.common import JsonValue, Message
from stackray.api.errors import ProviderError
from stackray.api.inference import ChatCompletionRequest
from stackray.api.safety import RunShieldResponse, SafetyViolation, Shield, ViolationLevel
from stackray.providers.remote.inference import translate
from stackray.providers.remote.inference.client import RemoteClient
from stackray.providers.remote.safety.sambanova.config import SambaNovaSafetyConfig

PREFIX = "sambanova/"
USER_MESSAGE = "I can't answer that. Can I help with something else?"
"""What Llama Stack tells the user when a SambaNova shield fires."""


class SambaNovaSafetyAdapter:
    """See the module docstring."""

    def __init__(self, config: SambaNovaSafetyConfig, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self.provider_id: str = context.provider_id
        self.client = RemoteClient(
            self.provider_id,
            config.url,
            api_key=config.api_key,
            provider_data_key="sambanova_api_key",
            requires_api_key=True,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            max_connections=config.max_connections,
        )
        self.dialect = translate.Dialect(provider_type="remote::sambanova")

    @staticmethod
    def model_of(shield: Shield) -> str:
        name = shield.provider_resource_id or shield.identifier
        return name.removeprefix(PREFIX)

    async def register_shield(self, shield: Shield) -> Shield:
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def close(self) -> None:
        await self.client.aclose()

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse:
        model = self.model_of(shield)
        body = translate.chat_request_to_openai(
            ChatCompletionRequest(model_id=model, messages=messages), self.dialect
        )
        data = await self.client.request_json(
            "POST", "chat/completions", {"model": model, "messages": body["messages"]}
        )
        try:
            answer = str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"unexpected answer from {self.client.base_url}: {exc}",
                provider_id=self.provider_id,
            ) from None
        if "unsafe" not in answer.lower():
            return RunShieldResponse(violation=None)
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level=ViolationLevel.error,
                user_message=USER_MESSAGE,
                metadata={"violation_type": answer.strip().split("\n")[-1].strip()},
            )
        )
