from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class TogetherImplConfig(RemoteInferenceConfig):
    """Settings of `remote::together`."""

    url: str = Field(
        default="https://api.together.xyz/v1",
        description="Base URL of Together AI's OpenAI-compatible API, with its /v1.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Together AI API key; a request may bring its own as provider data 'together_api_key'.",
    )
