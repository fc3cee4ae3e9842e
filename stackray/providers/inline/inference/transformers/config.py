from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TransformersInferenceConfig(BaseModel):
    """Settings of the `inline::transformers` provider."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(
        default="auto", description="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1' ..."
    )
    max_batch_size: int = Field(
        default=8, ge=1, description="Most sequences decoded together in one batch."
    )
    batch_wait_ms: float = Field(
        default=5.0, ge=0, description="How long a new request waits for others to share its batch."
    )
    default_max_tokens: int = Field(
        default=512,
        ge=1,
        description="Tokens generated when a request sets no max_tokens (bounded by the context).",
    )
    max_loaded_models: int = Field(
        default=2, ge=1, description="Models kept in memory at once (least recently used go first)."
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="Torch CPU threads; default the replica's num_cpus (Ray sets OMP_NUM_THREADS to it).",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Where GGUF models are kept converted to safetensors; default <data_dir>/providers/<id>/cache.",
    )
