"""The Inference deployment: an `InferenceRouter` per replica."""

from __future__ import annotations

from typing import Any

from stackray.deployments.backends import Dispatcher
from stackray.deployments.logs import quiet_client_errors
from stackray.runtime.config import parse_config
from stackray.runtime.routers.inference import InferenceRouter
from stackray.runtime.stack import (
    build_inference_providers,
    open_completion_store,
    open_registry,
    register_config_models,
)


class InferenceDeployment(InferenceRouter, Dispatcher):
    """Serves the inference and models APIs; model servers are reached through handles."""

    async def __init__(self, config: dict[str, Any], model_servers: dict[str, Any]) -> None:  # type: ignore[misc]
        quiet_client_errors()
        stack = parse_config(config, "<deployed config>")
        providers = await build_inference_providers(stack, model_servers)
        InferenceRouter.__init__(
            self, providers, open_registry(stack), open_completion_store(stack)
        )
        await register_config_models(self, stack)

    async def check_health(self) -> None:
        """Serve's replica health check."""
        await self.health()
