"""Model servers: one deployment per inline model provider (transformers,
sentence-transformers ...), on a GPU when the cluster has one, on CPU otherwise.

The replica holds the provider object and exposes its methods; the inference router calls
them through a `ProviderProxy`.
"""

from __future__ import annotations

import os
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.deployments.backends import Dispatcher
from stackray.deployments.logs import quiet_client_errors
from stackray.runtime import telemetry
from stackray.runtime.config import parse_config
from stackray.runtime.resolver import instantiate_provider


class ModelServerDeployment(Dispatcher):
    """Hosts one inline model provider; every public method of the provider is callable."""

    async def __init__(self, config: dict[str, Any], api: str, provider_id: str) -> None:  # type: ignore[misc]
        quiet_client_errors()
        # Busy-waiting OpenMP threads collapse throughput when another process holds a
        # core (measured: generate fell from 15 to 2 tok/s); passive waiting avoids it.
        # Read when torch loads, which happens below, in the provider.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        stack = parse_config(config, "<deployed config>")
        telemetry.configure(stack, f"model-{provider_id}")
        api_enum = Api(api)
        matches = [p for p in stack.providers_of(api_enum) if p.provider_id == provider_id]
        if not matches:
            raise ConfigError(f"no {api} provider {provider_id!r} in the config")
        self._provider = await instantiate_provider(api_enum, matches[0], stack)
        preload = getattr(self._provider, "preload", None)
        if preload is not None:
            models = [m for m in stack.models if m.provider_id == provider_id]
            await preload(models)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._provider, name)

    async def check_health(self) -> None:
        check = getattr(self._provider, "check_health", None)
        if check is not None:
            await check()
