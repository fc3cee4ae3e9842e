from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class BedrockSafetyConfig(BaseModel):
    """Settings of `remote::bedrock` (AWS Bedrock Guardrails). Credentials not given here
    come from boto3's usual chain (environment, profile, instance role)."""

    model_config = ConfigDict(extra="forbid")

    region_name: str | None = Field(default=None, description="AWS region, e.g. us-east-1.")
    profile_name: str | None = Field(default=None, description="A profile of ~/.aws/config.")
    aws_access_key_id: SecretStr | None = Field(default=None, description="Access key id.")
    aws_secret_access_key: SecretStr | None = Field(default=None, description="Secret key.")
    aws_session_token: SecretStr | None = Field(
        default=None, description="Session token of temporary credentials."
    )
    endpoint_url: str | None = Field(
        default=None, description="Another endpoint for bedrock-runtime (a VPC endpoint)."
    )
    guardrail_identifier: str | None = Field(
        default=None,
        description="Guardrail id or ARN for shields whose params name none; else the shield's provider_shield_id.",
    )
    guardrail_version: str = Field(
        default="DRAFT",
        description="Guardrail version for shields whose params name none ('DRAFT' or a number).",
    )
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to connect.")
    read_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for an answer.")
    max_attempts: int = Field(
        default=3, ge=1, description="Attempts per call (botocore's standard retry mode)."
    )
