from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChromaVectorIOConfig(BaseModel):
    """Settings of `remote::chromadb`: a Chroma server (`chroma run`, Chroma Cloud, ...)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL of the Chroma server, e.g. http://localhost:8000.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers sent with every request (e.g. an auth token).",
    )
