from __future__ import annotations

from pydantic import Field

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class OllamaImplConfig(RemoteInferenceConfig):
    """Settings of `remote::ollama`."""

    url: str = Field(
        default="http://localhost:11434",
        description="Root URL of the Ollama server (its API is under /api, its OpenAI-compatible API under /v1).",
    )
    raise_on_connect_error: bool = Field(
        default=True,
        description="Fail at start when the server cannot be reached; if false, only requests fail while it is down.",
    )
