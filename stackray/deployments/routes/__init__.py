"""The gateway's routes, one module per API.

Each module has ``register(routes: Routes)`` adding its endpoints with `Routes.add`; the
gateway calls them all (`ROUTE_MODULES`). Endpoints call API deployments through
`Routes.call` / `Routes.stream` and return `Routes.json(...)`; errors are raised as
`StackError`s and mapped to HTTP by the gateway.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

from stackray.api.datatypes import Api

OPENAI_PREFIXES = ("/v1/openai/v1", "/v1")

# Modules under `stackray.deployments.routes`, each with `register(routes)`.
ROUTE_MODULES = (
    "inference",
    "vector_io",
    "files",
    "safety",
    "tool_runtime",
    "agents",
    "telemetry",
    "datasetio",
    "scoring",
    "eval",
)


def json_response(model: BaseModel | None, status_code: int = 200) -> Response:
    """A model as JSON, without unset optional fields (as the contract's clients expect)."""
    if model is None:
        return Response(status_code=status_code, content=b"null", media_type="application/json")
    return Response(
        content=model.model_dump_json(exclude_none=True),
        status_code=status_code,
        media_type="application/json",
    )


class Routes:
    """What a route module needs: the app, the calling convention, and route bookkeeping."""

    def __init__(
        self,
        app: FastAPI,
        call: Callable[..., Awaitable[Any]],
        stream: Callable[..., Awaitable[Response]],
    ) -> None:
        self.app = app
        self.call = call
        """``await call(api, method, *args)``: the API deployment's `method`."""
        self.stream = stream
        """``await stream(api, method, *args, openai=False)``: an SSE response of an async
        generator method (``openai=True`` ends it with ``data: [DONE]``)."""
        self.apis: dict[str, Api] = {}
        """Path -> the API it belongs to (for /v1/inspect/routes)."""

    json = staticmethod(json_response)

    def add(
        self,
        api: Api,
        method: str,
        path: str,
        endpoint: Callable[..., Any],
        openai: bool = False,
        **kwargs: Any,
    ) -> None:
        """Serve `endpoint` at `path`; ``openai=True``: `path` is relative to the OpenAI
        prefixes and is served under each of them (/v1/openai/v1/... and /v1/...)."""
        paths = [prefix + path for prefix in OPENAI_PREFIXES] if openai else [path]
        for p in paths:
            self.app.add_api_route(p, endpoint, methods=[method], response_model=None, **kwargs)
            self.apis[p] = api


def register_all(routes: Routes) -> None:
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"stackray.deployments.routes.{name}")
        module.register(routes)
