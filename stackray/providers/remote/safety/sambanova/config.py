from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class SambaNovaSafetyConfig(RemoteInferenceConfig):
    """Settings of `remote::sambanova` safety, with Llama Stack 0.2.12's fields."""

    url: str = Field(
        default="https://api.sambanova.ai/v1",
        description="Base URL of SambaNova Cloud's OpenAI-compatible API, with its /v1.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="SambaNova Cloud API key; a request may bring its own as provider data "
        "'sambanova_api_key'.",
    )
