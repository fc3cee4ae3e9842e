from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class QdrantVectorIOConfig(BaseModel):
    """Settings of `remote::qdrant`: a Qdrant server (or Qdrant Cloud); the fields are
    qdrant-client's connection arguments."""

    model_config = ConfigDict(extra="forbid")

    location: str | None = Field(
        default=None,
        description="A URL, or ':memory:' for an in-process database (testing); instead of `url`/`host`.",
    )
    url: str | None = Field(default=None, description="Server URL, e.g. http://localhost:6333.")
    port: int | None = Field(default=6333, description="REST port.")
    grpc_port: int = Field(default=6334, description="gRPC port.")
    prefer_grpc: bool = Field(
        default=False, description="Use gRPC rather than REST where possible."
    )
    https: bool | None = Field(default=None, description="Use HTTPS (default: as the URL says).")
    api_key: str | None = Field(default=None, description="API key (Qdrant Cloud).")
    prefix: str | None = Field(default=None, description="Path prefix of the REST API.")
    timeout: int | None = Field(default=None, description="Request timeout in seconds.")
    host: str | None = Field(default=None, description="Server host name, instead of `url`.")

    @model_validator(mode="after")
    def _one_address(self) -> QdrantVectorIOConfig:
        given = [name for name in ("location", "url", "host") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"give only one of location, url, host (got {', '.join(given)})")
        return self
