"""`ApiDeployment`: one Serve deployment class for every API.

A replica builds its API's router (`stackray.runtime.routers.ROUTERS`) with the APIs it
depends on reached through their deployment handles, and serves the router's public
methods through the `Dispatcher` entry points.
"""

from __future__ import annotations

from typing import Any

from stackray.api.datatypes import Api
from stackray.deployments.backends import ApiClient, Dispatcher, as_backend
from stackray.deployments.logs import quiet_client_errors
from stackray.runtime import telemetry
from stackray.runtime.config import parse_config
from stackray.runtime.routers import build_router


class ApiDeployment(Dispatcher):
    """Serves one API: every public method of its router is callable."""

    async def __init__(  # type: ignore[misc]
        self,
        config: dict[str, Any],
        api: str,
        deps: dict[str, Any],
        model_servers: dict[str, Any] | None = None,
    ) -> None:
        quiet_client_errors()
        stack = parse_config(config, "<deployed config>")
        self.api = Api(api)
        telemetry.configure(stack, api.replace("_", "-"))
        clients = {Api(name): ApiClient(as_backend(handle), name) for name, handle in deps.items()}
        self._router = await build_router(stack, self.api, clients, model_servers or {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._router, name)

    async def health(self) -> None:
        check = getattr(self._router, "health", None)
        if check is not None:
            await check()

    async def check_health(self) -> None:
        """Serve's replica health check."""
        await self.health()
