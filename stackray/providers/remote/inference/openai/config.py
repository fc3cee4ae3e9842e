from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class OpenAIConfig(RemoteInferenceConfig):
    """Settings of `remote::openai`."""

    api_key: SecretStr | None = Field(
        default=None,
        description="OpenAI API key; a request may bring its own as provider data 'openai_api_key'.",
    )
    url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("url", "base_url"),
        description="Base URL of the API, with its /v1 (also accepted as base_url, as newer Llama Stack names it).",
    )
