from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class DatabricksImplConfig(RemoteInferenceConfig):
    """Settings of `remote::databricks`, with Llama Stack 0.2.12's fields."""

    url: str = Field(
        description="The workspace's model serving URL (https://<workspace>/serving-endpoints): "
        "its OpenAI-compatible routes are under it."
    )
    api_token: SecretStr | None = Field(
        default=None, description="Databricks personal access token, sent as a bearer token."
    )
