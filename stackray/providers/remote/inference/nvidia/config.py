from __future__ import annotations

from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator

from stackray.providers.remote.inference.config import RemoteInferenceConfig

HOSTED_HOST = "integrate.api.nvidia.com"


class NVIDIAConfig(RemoteInferenceConfig):
    """Settings of `remote::nvidia`, with Llama Stack 0.2.12's fields."""

    url: str = Field(
        default=f"https://{HOSTED_HOST}",
        description="Root URL of the NIM: NVIDIA's hosted API, or a self-hosted NIM "
        "(http://host:8000).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="NVIDIA API key: needed for the hosted API; a self-hosted NIM may take none.",
    )
    timeout: int | None = Field(
        default=None,
        gt=0,
        description="Llama Stack 0.2.12's request timeout in seconds; when set it replaces "
        "`timeout_s`.",
    )
    append_api_version: bool = Field(
        default=True,
        description="Append /v1 to `url` for the OpenAI-compatible routes (false: `url` "
        "already ends with them).",
    )

    @field_validator("append_api_version", mode="before")
    @classmethod
    def _from_environment(cls, value: object) -> object:
        # ${env.NVIDIA_APPEND_API_VERSION:True}: as in 0.2.12, anything but "false" is true.
        if isinstance(value, str):
            return value.strip().lower() != "false"
        return value

    def is_hosted(self) -> bool:
        return urlparse(self.url).hostname == HOSTED_HOST
