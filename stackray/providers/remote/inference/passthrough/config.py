from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class PassthroughImplConfig(RemoteInferenceConfig):
    """Settings of `remote::passthrough`, with Llama Stack 0.2.12's fields."""

    url: str = Field(
        description="Root URL of the other Llama Stack server (http://host:8321). "
        "(0.2.12 also takes it per request as provider data 'passthrough_url'; here it is "
        "configured, so requests cannot point the stack at other hosts.)"
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Its API key; a request may bring its own as provider data "
        "'passthrough_api_key'.",
    )
