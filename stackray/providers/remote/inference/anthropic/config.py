from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class AnthropicConfig(RemoteInferenceConfig):
    """Settings of `remote::anthropic`, with Llama Stack 0.2.12's field."""

    api_key: SecretStr | None = Field(
        default=None,
        description="Anthropic API key; a request may bring its own as provider data "
        "'anthropic_api_key'.",
    )
    url: str = Field(
        default="https://api.anthropic.com",
        description="Root URL of Anthropic's API (its Messages API is /v1/messages).",
    )
    default_max_tokens: int = Field(
        default=4096,
        ge=1,
        description="max_tokens sent when a request sets none (Anthropic requires one).",
    )
