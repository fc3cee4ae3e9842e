from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class InferenceAPIImplConfig(RemoteInferenceConfig):
    """Settings of `remote::hf::serverless`, with Llama Stack 0.2.12's fields."""

    huggingface_repo: str = Field(
        description="The model's id on the Hugging Face Hub (e.g. meta-llama/Llama-3.1-8B-Instruct)."
    )
    api_token: SecretStr | None = Field(
        default=None, description="Hugging Face access token, sent as a bearer token."
    )
    url: str | None = Field(
        default=None,
        description="Root URL of the model on the Inference API; default "
        "https://api-inference.huggingface.co/models/<huggingface_repo> (set it for a proxy "
        "or a mirror).",
    )

    def root_url(self) -> str:
        if self.url:
            return self.url
        return f"https://api-inference.huggingface.co/models/{self.huggingface_repo}"


class InferenceEndpointImplConfig(RemoteInferenceConfig):
    """Settings of `remote::hf::endpoint`, with Llama Stack 0.2.12's fields."""

    endpoint_name: str = Field(
        description="The Inference Endpoint, as '<namespace>/<name>' or '<name>' (the "
        "namespace is then the token's user)."
    )
    api_token: SecretStr | None = Field(
        default=None, description="Hugging Face access token, sent as a bearer token."
    )
    endpoints_api_url: str = Field(
        default="https://api.endpoints.huggingface.cloud/v2",
        description="Hugging Face's Inference Endpoints API, asked for the endpoint's URL at start.",
    )
    hub_url: str = Field(
        default="https://huggingface.co",
        description="The Hub, asked for the token's user when endpoint_name has no namespace.",
    )
