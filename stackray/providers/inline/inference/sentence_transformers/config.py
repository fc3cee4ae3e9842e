from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SentenceTransformersInferenceConfig(BaseModel):
    """Settings of the `inline::sentence-transformers` embedding provider."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(
        default="auto", description="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1' ..."
    )
    max_batch_size: int = Field(
        default=64, ge=1, description="Most texts encoded in one forward pass."
    )
    batch_wait_ms: float = Field(
        default=5.0, ge=0, description="How long to wait for more texts to fill a batch."
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="Torch CPU threads; default the replica's num_cpus (Ray sets OMP_NUM_THREADS to it).",
    )
    max_loaded_models: int = Field(
        default=4, ge=1, description="Models kept in memory at once (least recently used go first)."
    )
