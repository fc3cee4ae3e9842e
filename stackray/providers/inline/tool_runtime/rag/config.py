"""Config of `inline::rag-runtime`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RagToolRuntimeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_dirs: list[str] = Field(
        default_factory=list,
        description="Directories whose files a RAG document may name by path or file:// URL; "
        "other local paths are refused (a client must not read the server's files).",
    )
