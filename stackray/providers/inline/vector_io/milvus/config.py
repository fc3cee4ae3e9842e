from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MilvusVectorIOConfig(BaseModel):
    """Settings of `inline::milvus`: Milvus Lite, a Milvus database in one local file."""

    model_config = ConfigDict(extra="forbid")

    db_path: str | None = Field(
        default=None,
        description="The Milvus Lite database file; default `milvus.db` in the provider's data directory.",
    )
    consistency_level: str = Field(
        default="Strong",
        description="Consistency level of reads (Strong, Bounded, Session, Eventually).",
    )
