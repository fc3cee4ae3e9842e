"""`ApiDeployment`: one Serve deployment class for every API.

A replica builds its API's router (`stackray.runtime.graph.build_api`) over clients of
the API deployments and provider deployments it calls, and serves the router's public
methods through the `Dispatcher` entry points.
"""

from __future__ import annotations

from typing import Any

from stackray.api.datatypes import Api
from stackray.deployments.handles import Dispatcher, handle_client
from stackray.deployments.logs import quiet_client_errors
from stackray.runtime import telemetry
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_api, stack_graph


class ApiDeployment(Dispatcher):
    """Serves one API: every public method of its router is callable."""

    async def __init__(  # type: ignore[misc]
        self,
        config: dict[str, Any],
        api: str,
        apis: dict[str, Any],
        servers: dict[str, Any],
    ) -> None:
        stack = parse_config(config, "<deployed config>")
        stack.apply_log_levels()
        node = next(n for n in stack_graph(stack).apis if n.api == Api(api))
        telemetry.configure(stack, node.name)
        quiet_client_errors()  # after telemetry: its log handler is set up then
        self._router = await build_api(
            stack,
            node,
            {Api(name): handle_client(h, name) for name, h in apis.items()},
            {pid: handle_client(h, pid) for pid, h in servers.items()},
        )

    def _target(self) -> Any:
        return self._router

    async def check_health(self) -> None:
        """Serve's replica health check."""
        check = getattr(self._router, "health", None)
        if check is not None:
            await check()
