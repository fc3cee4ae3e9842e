from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class FireworksImplConfig(RemoteInferenceConfig):
    """Settings of `remote::fireworks`."""

    url: str = Field(
        default="https://api.fireworks.ai/inference/v1",
        description="Base URL of Fireworks AI's OpenAI-compatible API, with its /v1.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Fireworks AI API key; a request may bring its own as provider data 'fireworks_api_key'.",
    )
