from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class GeminiConfig(RemoteInferenceConfig):
    """Settings of `remote::gemini`, with Llama Stack 0.2.12's field."""

    api_key: SecretStr | None = Field(
        default=None,
        description="Gemini API key; a request may bring its own as provider data "
        "'gemini_api_key'.",
    )
    url: str = Field(
        default="https://generativelanguage.googleapis.com/v1beta",
        description="Base URL of the Gemini API, with its version.",
    )
