from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig, parse_tls_verify


class VLLMInferenceAdapterConfig(RemoteInferenceConfig):
    """Settings of `remote::vllm` (the fields of Llama Stack's vLLM adapter)."""

    url: str = Field(
        description="Base URL of the server's OpenAI API, with its /v1 (http://host:8000/v1)."
    )
    max_tokens: int = Field(
        default=4096,
        ge=1,
        description="Tokens to generate when a Llama Stack request sets no max_tokens.",
    )
    api_token: SecretStr | None = Field(
        default=SecretStr("fake"),
        description="Bearer token the server expects (vllm serve --api-key); a request may bring its own as provider data 'vllm_api_token'.",
    )
    tls_verify: Annotated[bool | str, BeforeValidator(parse_tls_verify)] = Field(
        default=True,
        description="Verify the server's TLS certificate: true, false, or the path of a CA certificate file.",
    )
