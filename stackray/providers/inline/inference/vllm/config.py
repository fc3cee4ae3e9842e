"""Settings of `inline::vllm`, where it may run, and the Serve options of its deployment."""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stackray.api.errors import ConfigError


class VLLMConfig(BaseModel):
    """The fields of Llama Stack's inline vLLM config, and how the replica is placed."""

    model_config = ConfigDict(extra="forbid")

    tensor_parallel_size: int = Field(
        default=1, ge=1, description="GPUs one model is split across (tensor parallelism)."
    )
    max_tokens: int = Field(
        default=4096, ge=1, description="Tokens generated when a request sets no max_tokens."
    )
    max_model_len: int = Field(
        default=4096, ge=1, description="Context length (prompt + output tokens) per sequence."
    )
    max_num_seqs: int = Field(
        default=4, ge=1, description="Sequences the engine decodes together at most."
    )
    enforce_eager: bool = Field(
        default=False, description="Run the model eagerly (no CUDA graphs): slower, less memory."
    )
    gpu_memory_utilization: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Share of each GPU's memory vLLM takes for weights and KV cache.",
    )
    swap_space: int = Field(
        default=4, ge=0, description="CPU swap space per GPU for the KV cache, in GiB."
    )
    dtype: str = Field(
        default="auto", description="Weights' dtype: auto, bfloat16, float16, float32."
    )
    download_dir: str | None = Field(
        default=None,
        description="Where model weights are downloaded; default the Hugging Face cache.",
    )
    max_loaded_models: int = Field(
        default=1,
        ge=1,
        description="Models kept loaded at once (each takes gpu_memory_utilization of the GPUs).",
    )
    num_gpus: float | None = Field(
        default=None,
        gt=0,
        description="GPUs of the replica actor when tensor_parallel_size is 1 (a fraction shares a GPU); default 1.",
    )
    num_cpus: float = Field(
        default=1,
        ge=0,
        description="CPUs of the replica actor (and of each tensor-parallel worker).",
    )
    placement_strategy: Literal["STRICT_PACK", "PACK", "SPREAD", "STRICT_SPREAD"] = Field(
        default="STRICT_PACK",
        description="Ray placement group strategy of the tensor-parallel workers (STRICT_PACK: one node).",
    )

    def gpus_needed(self) -> float:
        """GPUs one replica takes."""
        if self.tensor_parallel_size > 1:
            return float(self.tensor_parallel_size)
        return self.num_gpus if self.num_gpus is not None else 1.0


def deployment_options(config: VLLMConfig) -> dict[str, Any]:
    """Serve options of the model-server deployment.

    With tensor parallelism, the replica gets a placement group: a first bundle for the
    replica actor itself (CPU only), then one GPU bundle per tensor-parallel worker, which
    vLLM's Ray executor places in the replica's placement group.
    """
    if config.tensor_parallel_size == 1:
        return {
            "ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": config.gpus_needed()}
        }
    worker = {"CPU": config.num_cpus, "GPU": 1}
    return {
        "ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": 0},
        "placement_group_bundles": [{"CPU": config.num_cpus}]
        + [dict(worker) for _ in range(config.tensor_parallel_size)],
        "placement_group_strategy": config.placement_strategy,
    }


def local_gpu_count() -> int:
    """CUDA devices this process sees."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


def check_host(provider_id: str, config: VLLMConfig, gpus: float | None = None) -> None:
    """Raise `ConfigError` unless vllm can run: enough GPUs (`gpus`: the Ray cluster's, or
    None for this machine's), and, on this machine, the vllm package."""
    problems = []
    where = "this machine" if gpus is None else "the Ray cluster"
    have = float(local_gpu_count()) if gpus is None else gpus
    need = config.gpus_needed()
    if have < need:
        problems.append(
            f"it needs {need:g} GPU(s) (tensor_parallel_size={config.tensor_parallel_size}) "
            f"and {where} has {have:g}"
        )
    if gpus is None and importlib.util.find_spec("vllm") is None:
        problems.append("the vllm package is not installed (pip install 'stackray[gpu]')")
    if problems:
        raise ConfigError(
            f"provider '{provider_id}' (inline::vllm) cannot run here: "
            + "; ".join(problems)
            + ". On a machine without a GPU, serve the model with a vLLM server and use "
            "remote::vllm instead."
        )
