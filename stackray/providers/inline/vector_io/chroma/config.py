from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChromaVectorIOConfig(BaseModel):
    """Settings of `inline::chromadb`: an embedded Chroma database in a directory."""

    model_config = ConfigDict(extra="forbid")

    db_path: str | None = Field(
        default=None,
        description="Directory of the Chroma database; default `chroma/` in the provider's data directory.",
    )
