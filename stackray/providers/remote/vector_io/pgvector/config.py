from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PGVectorVectorIOConfig(BaseModel):
    """Settings of the `remote::pgvector` vector IO provider (PostgreSQL with pgvector)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        default="localhost",
        description="Server host name or address, or the directory of its Unix socket.",
    )
    port: int = Field(default=5432, description="Server port.")
    db: str = Field(default="postgres", description="Database name.")
    user: str = Field(description="User name to connect as.")
    password: str | None = Field(
        default=None,
        repr=False,
        description="Password; if unset, libpq's defaults apply (PGPASSWORD, ~/.pgpass).",
    )
    index_type: Literal["hnsw", "flat"] = Field(
        default="hnsw",
        description="hnsw: an HNSW index on the embeddings (approximate, fast); flat: exact scan.",
    )
    hnsw_m: int = Field(default=16, ge=2, le=100, description="HNSW links per node.")
    hnsw_ef_construction: int = Field(
        default=64, ge=4, description="HNSW candidate list size while building."
    )
    hnsw_ef_search: int = Field(
        default=100, ge=1, le=1000, description="HNSW candidate list size while searching."
    )
    text_search_config: str = Field(
        default="english",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="PostgreSQL text search configuration for keyword search (english, simple ...).",
    )
