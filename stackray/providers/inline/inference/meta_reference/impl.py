"""`inline::meta-reference` inference: `TransformersInferenceProvider` with Llama Stack
0.2.12's config: `model` loaded from `checkpoint_dir`, `max_seq_len` as the context,
`max_batch_size` for batching, `torch_seed` set at start."""

from __future__ import annotations

import os
from typing import Any

from stackray.providers.inline.inference.meta_reference.config import MetaReferenceInferenceConfig
from stackray.providers.inline.inference.transformers.impl import TransformersInferenceProvider


class MetaReferenceInferenceProvider(TransformersInferenceProvider):
    """See the module docstring."""

    config: MetaReferenceInferenceConfig

    def __init__(
        self, config: MetaReferenceInferenceConfig, deps: dict[Any, Any], context: Any
    ) -> None:
        super().__init__(config, deps, context)
        if config.torch_seed is not None:
            import torch

            torch.manual_seed(config.torch_seed)

    def source_of(self, name: str) -> str:
        """Where the weights of the model named `name` are."""
        config = self.config
        if config.checkpoint_dir and (config.model is None or name == config.model):
            return os.path.expanduser(config.checkpoint_dir)
        return name

    def _load(self, name: str) -> Any:
        from stackray.providers.inline.inference.transformers import TransformersEngine

        engine = TransformersEngine(
            self.source_of(name),
            cache_dir=self.cache_dir,
            device=self.config.device,
            max_batch_size=self.config.max_batch_size,
            batch_wait_ms=self.config.batch_wait_ms,
            default_max_tokens=self.config.default_max_tokens,
            max_context_length=self.config.max_seq_len,
        )
        return engine
