from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class GroqConfig(RemoteInferenceConfig):
    """Settings of `remote::groq`."""

    api_key: SecretStr | None = Field(
        default=None,
        description="Groq API key; a request may bring its own as provider data 'groq_api_key'.",
    )
    url: str = Field(
        default="https://api.groq.com",
        description="Root URL of the Groq API; its OpenAI-compatible API is under /openai/v1.",
    )
