from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class RunpodImplConfig(RemoteInferenceConfig):
    """Settings of `remote::runpod`, with Llama Stack 0.2.12's fields."""

    url: str | None = Field(
        default=None,
        description="The endpoint's OpenAI-compatible base URL "
        "(https://api.runpod.ai/v2/<endpoint>/openai/v1); required to send a request.",
    )
    api_token: SecretStr | None = Field(
        default=None, description="RunPod API key, sent as a bearer token."
    )
