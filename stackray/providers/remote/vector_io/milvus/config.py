from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MilvusVectorIOConfig(BaseModel):
    """Settings of `remote::milvus`: a Milvus server or Zilliz Cloud."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(
        description="The Milvus server's URI (http://host:19530), or a Milvus Lite file path."
    )
    token: str | None = Field(
        default=None, description="Authentication token ('user:password' or an API key)."
    )
    consistency_level: str = Field(
        default="Strong",
        description="Consistency level of reads (Strong, Bounded, Session, Eventually).",
    )
