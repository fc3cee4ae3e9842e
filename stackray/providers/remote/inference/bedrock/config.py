"""Settings of `remote::bedrock`: the fields of Llama Stack's Bedrock config, and ours."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class BedrockConfig(BaseModel):
    """How to reach Bedrock Runtime: region, credentials, timeouts and retries.

    Unset credentials fall back to boto3's own chain (environment variables such as
    AWS_ACCESS_KEY_ID / AWS_PROFILE / AWS_DEFAULT_REGION, ~/.aws files, instance roles).
    """

    model_config = ConfigDict(extra="forbid")

    aws_access_key_id: str | None = Field(
        default=None,
        description="AWS access key id; default boto3's chain (AWS_ACCESS_KEY_ID ...).",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        description="AWS secret access key; default boto3's chain (AWS_SECRET_ACCESS_KEY ...).",
    )
    aws_session_token: SecretStr | None = Field(
        default=None,
        description="AWS session token of temporary credentials; default AWS_SESSION_TOKEN.",
    )
    region_name: str | None = Field(
        default=None,
        description="AWS region (us-west-2 ...); default AWS_DEFAULT_REGION / the profile's.",
    )
    profile_name: str | None = Field(
        default=None,
        description="Profile of ~/.aws/credentials and ~/.aws/config to use; default AWS_PROFILE.",
    )
    total_max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="Attempts per request, the first included, for throttling, 503 and connection failures; default 3.",
    )
    retry_mode: Literal["legacy", "standard", "adaptive"] | None = Field(
        default=None,
        description="boto3's retry mode; 'adaptive' adds boto3's client-side rate limiting. The retries themselves are the provider's (see total_max_attempts).",
    )
    retry_backoff_s: float = Field(
        default=0.5,
        ge=0,
        description="Wait before the first retry; it doubles for each further one.",
    )
    connect_timeout: float | None = Field(
        default=60, gt=0, description="Seconds to wait for a connection to Bedrock."
    )
    read_timeout: float | None = Field(
        default=60,
        gt=0,
        description="Seconds to wait for Bedrock to answer (or, while streaming, to send the next event).",
    )
    session_ttl: int | None = Field(
        default=3600,
        gt=0,
        description="Seconds before the boto3 session is made anew (credentials read again).",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Bedrock Runtime endpoint to use instead of the region's (a VPC endpoint or a proxy).",
    )
