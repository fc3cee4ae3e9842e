from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WeaviateVectorIOConfig(BaseModel):
    """Settings of `remote::weaviate`. As in Llama Stack, the cluster and key normally come
    with each request's provider data (``weaviate_cluster_url``, ``weaviate_api_key``);
    the fields here are the defaults for requests that bring none."""

    model_config = ConfigDict(extra="forbid")

    cluster_url: str | None = Field(
        default=None,
        description="Weaviate Cloud host (abc.weaviate.cloud) or a self-hosted URL (http://host:8080).",
    )
    api_key: str | None = Field(default=None, description="Weaviate API key.")
    grpc_port: int = Field(
        default=50051,
        description="gRPC port of a self-hosted Weaviate (Weaviate Cloud uses 443 on grpc-<host>).",
    )
