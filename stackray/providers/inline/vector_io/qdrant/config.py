from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QdrantVectorIOConfig(BaseModel):
    """Settings of `inline::qdrant`: qdrant-client's local mode, persisted in a directory."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        description="Directory of the local Qdrant storage; default `qdrant/` in the provider's data directory.",
    )
