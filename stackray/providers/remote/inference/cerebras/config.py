from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class CerebrasImplConfig(RemoteInferenceConfig):
    """Settings of `remote::cerebras`."""

    base_url: str = Field(
        default="https://api.cerebras.ai",
        description="Root URL of the Cerebras API; its OpenAI-compatible API is under /v1.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Cerebras API key; a request may bring its own as provider data 'cerebras_api_key'.",
    )
