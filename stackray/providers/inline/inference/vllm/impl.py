"""`inline::vllm`: `inline::transformers`' request handling over vLLM engines.

Both API surfaces, streaming, tool calls (rendered with the model's chat template and
parsed from its output) and JSON response formats (guided decoding) are the transformers
provider's; only the engine differs (`VLLMEngine`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from stackray.api.errors import BadRequestError
from stackray.api.models import Model, ModelType
from stackray.providers.inline.inference.transformers.impl import TransformersInferenceProvider
from stackray.providers.inline.inference.vllm.config import VLLMConfig, check_host


class VLLMInferenceProvider(TransformersInferenceProvider):
    """Serves LLMs with vLLM on the model server's GPUs."""

    def __init__(self, config: VLLMConfig, deps: dict[Any, Any], context: Any) -> None:
        # The replica is where vllm runs: no GPU or no vllm is a configuration error.
        check_host(context.provider_id, config)
        self.config = config  # type: ignore[assignment]
        self._engines: OrderedDict[str, Any] = OrderedDict()
        self._load_lock = asyncio.Lock()

    def _load(self, name: str) -> Any:
        from stackray.providers.inline.inference.vllm.engine import VLLMEngine

        return VLLMEngine(name, self.config)  # type: ignore[arg-type]

    async def register_model(self, model: Model) -> Model:
        if model.model_type != ModelType.llm:
            raise BadRequestError(
                f"inline::vllm serves llm models (model {model.identifier!r})",
                field="model_type",
            )
        return await super().register_model(model)
