"""The gateway: the FastAPI ingress of the stack.

Routes requests to the API deployments, validates bodies against the API models, maps
`StackError`s to HTTP statuses in one place, and turns streamed responses into
server-sent events. `create_gateway_app` builds the app over `ApiClient`s (of deployments
under Serve, of in-process routers in unit tests), so the same routes are tested both ways.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from stackray import __version__
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, NotFoundError, StackError
from stackray.api.inspect import (
    HealthInfo,
    HealthStatus,
    ListProvidersResponse,
    ListRoutesResponse,
    ProviderInfo,
    RouteInfo,
    VersionInfo,
)
from stackray.deployments.cluster import ClusterStatus, cluster_status
from stackray.deployments.routes import RouteBuilder, json_response
from stackray.playground import STATIC_DIR as PLAYGROUND_DIR
from stackray.runtime import telemetry
from stackray.runtime.calls import ApiClient
from stackray.runtime.config import StackConfig
from stackray.runtime.errors import to_stack_error
from stackray.runtime.request_context import (
    PROVIDER_DATA_HEADER,
    RequestContext,
    parse_provider_data,
    request_context_var,
)
from stackray.runtime.routers import owner

logger = logging.getLogger("stackray.gateway")

HEALTH_TIMEOUT_S = 5.0
_SECRET_WORDS = ("key", "token", "password", "secret", "credential")


_json = json_response


def error_body(err: StackError) -> dict[str, Any]:
    # `error` is what OpenAI clients read; `detail` is what Llama Stack clients print.
    body = err.to_dict()
    if err.field is not None:
        body["param"] = err.field
    return {"error": body, "detail": err.message}


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    if value and isinstance(value, str) and any(w in key.lower() for w in _SECRET_WORDS):
        return "********"
    return value


async def _sse(first: Any, rest: AsyncIterator[Any], openai: bool) -> AsyncIterator[bytes]:
    try:
        yield b"data: " + first.model_dump_json(exclude_none=True).encode() + b"\n\n"
        async for chunk in rest:
            yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
    except Exception as exc:  # the status line is gone: report the error in the stream
        err = to_stack_error(exc)
        import json

        yield b"event: error\ndata: " + json.dumps(error_body(err)).encode() + b"\n\n"
    if openai:
        yield b"data: [DONE]\n\n"


async def stream_response(agen: AsyncIterator[Any], openai: bool = False) -> Response:
    """An SSE response; errors before the first chunk become ordinary error responses."""
    iterator = agen.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        return StreamingResponse(
            iter([b"data: [DONE]\n\n"] if openai else []), media_type="text/event-stream"
        )
    return StreamingResponse(
        _sse(first, iterator, openai),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    parts = []
    first_field = None
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
        field = ".".join(loc) or "body"
        first_field = first_field or field
        parts.append(f"{field}: {e.get('msg')}")
    err = BadRequestError("invalid request: " + "; ".join(parts), field=first_field)
    body = error_body(err)
    body["errors"] = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors
    ]
    return JSONResponse(status_code=400, content=body)


class RequestContextMiddleware:
    """Builds the `RequestContext` of each HTTP request from its headers (pure ASGI, so
    the context variable it sets is visible to the endpoint)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        wanted = PROVIDER_DATA_HEADER.lower().encode()
        for name, value in scope.get("headers", ()):
            if name == wanted:
                header = value.decode("latin-1")
                break
        try:
            ctx = RequestContext(provider_data=parse_provider_data(header))
        except StackError as err:
            await JSONResponse(status_code=err.status_code, content=error_body(err))(
                scope, receive, send
            )
            return
        token = request_context_var.set(ctx)
        try:
            await self.app(scope, receive, send)
        finally:
            request_context_var.reset(token)


def create_gateway_app(stack: StackConfig, clients: dict[str, ApiClient]) -> FastAPI:
    """The HTTP surface of the stack over `clients`, by API name (what
    `stackray.runtime.graph.build_gateway_clients` builds)."""
    app = FastAPI(title="stackray", version=__version__, docs_url="/docs", redoc_url=None)
    for name, client in clients.items():
        if not isinstance(client, ApiClient):
            raise TypeError(f"the gateway calls APIs through ApiClients; {name} is {client!r}")
    b = dict(clients)
    served = set(stack.apis)
    route_apis: dict[str, Api] = {}

    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(telemetry.TracingMiddleware)

    @app.exception_handler(StackError)
    async def _stack_error(request: Request, exc: StackError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=error_body(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:
        err = to_stack_error(exc)
        return JSONResponse(status_code=err.status_code, content=error_body(err))

    def backend(api: str) -> ApiClient:
        if api not in b:
            raise NotFoundError(
                f"the {api} API is not served by this stack (apis: {', '.join(sorted(a.value for a in served))})"
            )
        return b[api]

    async def call(api: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(backend(api), method)(*args)
        except StackError:
            raise
        except Exception as exc:
            raise to_stack_error(exc) from None

    async def stream(api: str, method: str, *args: Any, openai: bool = False) -> Response:
        try:
            agen = getattr(backend(api), method)(*args)
            return await stream_response(agen, openai=openai)
        except StackError:
            raise
        except Exception as exc:
            raise to_stack_error(exc) from None

    # ---- health, version, inspect, providers -----------------------------------------

    @app.get("/v1/health", response_model=None, responses={200: {"model": HealthInfo}})
    async def health() -> Response:
        # Healthy once every API deployment answers: before that (models still loading on
        # a first start) a readiness probe must not send traffic here.
        try:
            checks = [call(api, "health") for api in b]
            await asyncio.wait_for(asyncio.gather(*checks), HEALTH_TIMEOUT_S)
        except Exception as exc:
            logger.info("health check failed: %s", exc)
            return _json(HealthInfo(status=HealthStatus.Error), status_code=503)
        return _json(HealthInfo(status=HealthStatus.OK))

    @app.get("/v1/version", response_model=None, responses={200: {"model": VersionInfo}})
    async def version() -> Response:
        return _json(VersionInfo(version=__version__))

    def _provider_types(api: Api | None) -> list[str]:
        if api is None:
            return []
        # Routing-table APIs (models, shields ...) are served by their owner's providers.
        return sorted({p.provider_type for p in stack.providers_of(owner(api))})

    @app.get(
        "/v1/inspect/routes", response_model=None, responses={200: {"model": ListRoutesResponse}}
    )
    async def inspect_routes() -> Response:
        routes = []
        for route in app.routes:
            api = route_apis.get(getattr(route, "path", ""))
            methods = sorted(getattr(route, "methods", None) or [])
            for method in methods:
                if method == "HEAD":
                    continue
                path = getattr(route, "path", "")
                routes.append(
                    RouteInfo(route=path, method=method, provider_types=_provider_types(api))
                )
        return _json(ListRoutesResponse(data=routes))

    def _provider_infos() -> list[ProviderInfo]:
        infos = []
        for api in stack.apis:
            for p in stack.providers_of(api):
                infos.append(
                    ProviderInfo(
                        api=api.value,
                        provider_id=p.provider_id,
                        provider_type=p.provider_type,
                        config=_redact(p.config),
                        health={"status": "OK"},
                    )
                )
        return infos

    @app.get(
        "/v1/providers", response_model=None, responses={200: {"model": ListProvidersResponse}}
    )
    async def list_providers() -> Response:
        return _json(ListProvidersResponse(data=_provider_infos()))

    @app.get(
        "/v1/providers/{provider_id}", response_model=None, responses={200: {"model": ProviderInfo}}
    )
    async def inspect_provider(provider_id: str) -> Response:
        for info in _provider_infos():
            if info.provider_id == provider_id:
                return _json(info)
        raise NotFoundError(f"provider {provider_id!r} not found", field="provider_id")

    # ---- stackray's own: the cluster view and the playground page ---------------------

    @app.get("/v1/stackray/cluster", response_model=None, responses={200: {"model": ClusterStatus}})
    async def cluster() -> Response:
        return _json(await cluster_status(stack))

    @app.get("/playground", include_in_schema=False)
    async def playground() -> Response:
        # Revalidated on each load, so a new release's page is never mixed with old assets.
        return FileResponse(PLAYGROUND_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/playground/static", StaticFiles(directory=PLAYGROUND_DIR), name="playground")

    routes = RouteBuilder(app, call, stream)
    routes.add_all()
    route_apis.update(routes.apis)

    return app
