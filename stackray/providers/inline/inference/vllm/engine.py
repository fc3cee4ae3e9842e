"""`VLLMEngine`: one model in vLLM's async engine, with the interface of the transformers
engine (`render_chat`, `generate`, `tokenizer`, `context_length`, `shutdown`), so the
provider serves both API surfaces with the same code as `inline::transformers`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from stackray.providers.inline.inference.transformers.chat_format import render_chat
from stackray.providers.inline.inference.transformers.engine import (
    GenerationChunk,
    GenerationRequest,
)
from stackray.providers.inline.inference.vllm import sampling
from stackray.providers.inline.inference.vllm.config import VLLMConfig


def engine_args(model: str, config: VLLMConfig) -> dict[str, Any]:
    """`AsyncEngineArgs` keyword arguments for `model`."""
    args: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": config.tensor_parallel_size,
        "max_model_len": config.max_model_len,
        "max_num_seqs": config.max_num_seqs,
        "enforce_eager": config.enforce_eager,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "swap_space": config.swap_space,
        "dtype": config.dtype,
        "download_dir": config.download_dir,
    }
    if config.tensor_parallel_size > 1:
        # Workers go into the replica's placement group (see config.deployment_options).
        args["distributed_executor_backend"] = "ray"
    return args


class VLLMEngine:
    """One model served by `vllm.AsyncLLMEngine` (AsyncLLM in vLLM's V1 engine)."""

    def __init__(self, model: str, config: VLLMConfig) -> None:
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine
        from vllm import sampling_params as vllm_sampling

        self.model = model
        self.config = config
        self._sampling_module = vllm_sampling
        self.engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**engine_args(model, config)))
        self.tokenizer = AutoTokenizer.from_pretrained(model, cache_dir=config.download_dir)
        self.context_length = config.max_model_len

    def render_chat(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
    ) -> str:
        return render_chat(self.tokenizer, messages, tools, tool_choice)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the continuation of `request.prompt`; closing early aborts the request."""
        if isinstance(request.prompt, str):
            prompt_ids = self.tokenizer.encode(
                request.prompt, add_special_tokens=request.add_special_tokens
            )
        else:
            prompt_ids = list(request.prompt)
        kwargs = sampling.sampling_kwargs(
            request,
            default_max_tokens=self.config.max_tokens,
            context_length=self.context_length,
            prompt_tokens=len(prompt_ids),
        )
        params = sampling.build_sampling_params(self._sampling_module, kwargs)
        request_id = f"stackray-{uuid.uuid4().hex}"
        sent_text = sent_tokens = 0
        finished = False
        try:
            async for output in self.engine.generate(
                {"prompt_token_ids": prompt_ids}, params, request_id
            ):
                out = output.outputs[0]
                token_ids = list(out.token_ids)
                reason = sampling.finish_reason(
                    out.finish_reason, getattr(out, "stop_reason", None)
                )
                chunk = GenerationChunk(
                    text=out.text[sent_text:],
                    token_ids=token_ids[sent_tokens:],
                    logprobs=(
                        sampling.logprob_dicts(out.logprobs[sent_tokens:])
                        if request.logprobs_top_k and out.logprobs is not None
                        else None
                    ),
                    finish_reason=reason,  # type: ignore[arg-type]
                    prompt_tokens=len(prompt_ids),
                    completion_tokens=len(token_ids),
                )
                sent_text, sent_tokens = len(out.text), len(token_ids)
                finished = reason is not None
                yield chunk
                if finished:
                    return
        finally:
            if not finished:
                await self.engine.abort(request_id)

    def shutdown(self, timeout: float | None = 30.0) -> None:
        stop = getattr(self.engine, "shutdown", None)
        if stop is not None:
            stop()
