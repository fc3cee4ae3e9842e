"""Provider deployments: one per provider that runs in its own deployment (a model
server, a faiss index owner, an embedded database), on a GPU when the cluster has one
and the provider wants it, on CPU otherwise. Named ``<holds>-<provider_id>``
(``model-transformers``, ``index-faiss``, ``database-chromadb``).

The replica holds the provider object and serves its public methods; routers reach it
through an `ApiClient` and guard it like any provider.
"""

from __future__ import annotations

import os
from typing import Any

from stackray.api.datatypes import Api
from stackray.deployments.handles import Dispatcher
from stackray.deployments.logs import quiet_client_errors
from stackray.runtime import telemetry
from stackray.runtime.config import parse_config
from stackray.runtime.resolver import start_provider_server


class ProviderDeployment(Dispatcher):
    """Hosts one provider; every public method of the provider is callable."""

    async def __init__(self, config: dict[str, Any], api: str, provider_id: str, name: str) -> None:  # type: ignore[misc]
        # Busy-waiting OpenMP threads collapse throughput when another process holds a
        # core (measured: generate fell from 15 to 2 tok/s); passive waiting avoids it.
        # Read when torch loads, which happens below, in the provider.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        stack = parse_config(config, "<deployed config>")
        stack.apply_log_levels()
        telemetry.configure(stack, name)
        quiet_client_errors()  # after telemetry: its log handler is set up then
        self._provider = await start_provider_server(stack, Api(api), provider_id)

    def _target(self) -> Any:
        return self._provider

    async def check_health(self) -> None:
        check = getattr(self._provider, "check_health", None)
        if check is not None:
            await check()
