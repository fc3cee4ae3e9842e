from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from stackray.runtime.storage import StoreConfig


class MetaReferenceEvalConfig(BaseModel):
    """Settings of the `inline::meta-reference` eval provider."""

    model_config = ConfigDict(extra="forbid")

    kvstore: StoreConfig | None = Field(
        default=None,
        description="Where jobs, their finished rows and results are kept (SQLite or "
        "PostgreSQL); default the stack's metadata store.",
    )
    max_concurrency: int = Field(
        default=8, ge=1, description="Rows generated at once by one job (or one evaluate_rows)."
    )
    max_rows_per_request: int = Field(
        default=10_000, ge=1, description="Most rows one evaluate_rows request may carry."
    )
    heartbeat_s: float = Field(
        default=1.0,
        gt=0,
        description="How often a running job records its progress and looks for a cancel.",
    )
    stale_after_s: float = Field(
        default=15.0,
        gt=0,
        description="A running job whose progress is older than this has lost its replica "
        "(a restart, a crash): another replica resumes it from its finished rows.",
    )
