from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stackray.providers.inline.inference.transformers.config import TransformersInferenceConfig


class QuantizationConfig(BaseModel):
    """Llama Stack 0.2.12's `quantization`: bf16 (none) is served; fp8/int4 are refused."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["bf16", "fp8_mixed", "int4_mixed"] = Field(
        default="bf16", description="bf16: the weights as they are; fp8_mixed, int4_mixed: refused."
    )
    scheme: str | None = Field(default=None, description="int4_mixed's scheme (refused).")

    @model_validator(mode="after")
    def _served(self) -> QuantizationConfig:
        if self.type != "bf16":
            raise ValueError(
                f"type {self.type!r}: Llama Stack's fp8/int4 quantization needs its own GPU "
                "kernels, which this engine does not have; use bf16 (or a quantized GGUF model)"
            )
        return self


class MetaReferenceInferenceConfig(TransformersInferenceConfig):
    """Settings of `inline::meta-reference` inference: Llama Stack 0.2.12's fields, served
    by the transformers engine (plus its own fields)."""

    model: str | None = Field(
        default=None,
        description="The model this provider serves (e.g. meta-llama/Llama-3.2-3B-Instruct); "
        "a registered model whose provider_model_id is this one loads from checkpoint_dir.",
    )
    checkpoint_dir: str | None = Field(
        default=None,
        description="Directory (Hugging Face format) or GGUF file of `model`'s weights; "
        "unset, `model` is loaded as a hub id or local path.",
    )
    quantization: QuantizationConfig | None = Field(
        default=None, description="{type: bf16}; fp8_mixed and int4_mixed are refused."
    )
    max_seq_len: int = Field(
        default=4096, ge=16, description="Most tokens of prompt and answer together."
    )
    max_batch_size: int = Field(
        default=1, ge=1, description="Most sequences decoded together (0.2.12's default: 1)."
    )
    model_parallel_size: int | None = Field(
        default=None,
        ge=0,
        description="GPUs one model is split over; 0, 1 or unset here (one device per model "
        "server; use inline::vllm for tensor parallelism).",
    )
    torch_seed: int | None = Field(
        default=None, description="Seed of torch's random generator, set when the server starts."
    )
    create_distributed_process_group: bool = Field(
        default=True,
        description="Accepted for Llama Stack compatibility; no effect here (no torch "
        "distributed group is used).",
    )

    @field_validator("checkpoint_dir", mode="before")
    @classmethod
    def _null(cls, value: object) -> object:
        # ${env.INFERENCE_CHECKPOINT_DIR:null} in Llama Stack's templates.
        return None if value in ("null", "None", "") else value

    @field_validator("model_parallel_size")
    @classmethod
    def _one_device(cls, value: int | None) -> int | None:
        if value is not None and value > 1:
            raise ValueError(
                f"{value}: the transformers engine runs a model on one device; use "
                "inline::vllm with tensor_parallel_size for a model split over GPUs"
            )
        return value
