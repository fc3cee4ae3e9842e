from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SQLiteVecVectorIOConfig(BaseModel):
    """Settings of the `inline::sqlite-vec` vector IO provider."""

    model_config = ConfigDict(extra="forbid")

    db_path: str | None = Field(
        default=None,
        description="SQLite database file; default <provider data dir>/sqlite_vec.db.",
    )
