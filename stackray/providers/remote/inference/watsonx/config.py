from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class WatsonXConfig(RemoteInferenceConfig):
    """Settings of `remote::watsonx`, with Llama Stack 0.2.12's fields."""

    url: str = Field(
        default="https://us-south.ml.cloud.ibm.com",
        description="Root URL of watsonx.ai in your region.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="IBM Cloud API key, exchanged for an IAM token."
    )
    project_id: str | None = Field(
        default=None, description="The watsonx.ai project the requests are billed to."
    )
    timeout: int | None = Field(
        default=None,
        gt=0,
        description="Llama Stack 0.2.12's request timeout in seconds; when set it replaces "
        "`timeout_s`.",
    )
    iam_url: str = Field(
        default="https://iam.cloud.ibm.com/identity/token",
        description="IBM Cloud IAM's token endpoint, where the API key is exchanged.",
    )
    api_version: str = Field(
        default="2024-05-31", description="The `version` query parameter of watsonx.ai's API."
    )
