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
from starlette.exceptions import HTTPException as StarletteHTTPException

from stackray import __version__
from stackray.api.datatypes import Api
from stackray.api.errors import (
    AuthenticationError,
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    StackError,
)
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
from stackray.runtime import redaction, telemetry
from stackray.runtime.auth import (
    FAILED,
    PUBLIC_PATHS,
    Authenticator,
    bearer_token,
    build_authenticator,
)
from stackray.runtime.calls import ApiClient
from stackray.runtime.config import StackConfig
from stackray.runtime.errors import to_stack_error
from stackray.runtime.quota import QuotaCounter
from stackray.runtime.redaction import redact, redact_text
from stackray.runtime.request_context import (
    PROVIDER_DATA_HEADER,
    RequestContext,
    parse_provider_data,
    request_context_var,
)
from stackray.runtime.routers import owner

logger = logging.getLogger("stackray.gateway")

HEALTH_TIMEOUT_S = 5.0


_json = json_response


def error_body(err: StackError) -> dict[str, Any]:
    # `error` is what OpenAI clients read; `detail` is what Llama Stack clients print.
    # A provider's error may quote what it was sent (a key): secrets are masked.
    body = err.to_dict()
    message = redact_text(err.message)
    body["message"] = message
    if err.field is not None:
        body["param"] = err.field
    return {"error": body, "detail": message}


def error_response(err: StackError) -> JSONResponse:
    """The HTTP answer of `err`. An overloaded, restarting or rate-limited stack says
    when to come back (`Retry-After`, seconds)."""
    headers = None
    if err.status_code in (429, 503):
        headers = {"Retry-After": str(int(getattr(err, "retry_after_s", None) or 1))}
    return JSONResponse(status_code=err.status_code, content=error_body(err), headers=headers)


def log_request_error(method: str, path: str, err: StackError, status: int | None = None) -> None:
    """One line per request that ends in an error: what was asked, the status and why.
    With telemetry on, the record carries the request's trace id (the telemetry log
    handler writes it; it is the `X-Trace-Id` response header). Server-side failures
    (5xx) are warnings."""
    code = status or err.status_code
    logger.log(
        logging.WARNING if code >= 500 else logging.INFO,
        "%s %s -> %d %s: %s",
        method,
        path,
        code,
        err.error_type,
        err.message,
    )


async def _sse(first: Any, rest: AsyncIterator[Any], openai: bool) -> AsyncIterator[bytes]:
    try:
        yield b"data: " + first.model_dump_json(exclude_none=True).encode() + b"\n\n"
        async for chunk in rest:
            yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
    except Exception as exc:  # the status line is gone: report the error in the stream
        err = to_stack_error(exc)
        logger.warning(
            "stream ended by an error event: %d %s: %s",
            err.status_code,
            err.error_type,
            err.message,
        )
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


def _json_error(exc: RequestValidationError, error: dict[str, Any]) -> BadRequestError:
    """A body that is not JSON: where the parser stopped, as line and column (1-based)."""
    doc = exc.body if isinstance(exc.body, str) else ""
    loc = error.get("loc", ())
    pos = loc[-1] if loc and isinstance(loc[-1], int) else 0
    line = doc.count("\n", 0, pos) + 1
    column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    why = (error.get("ctx") or {}).get("error") or error.get("msg")
    return BadRequestError(
        f"the request body is not valid JSON: {why} at line {line}, column {column}", field="body"
    )


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _field_path(body: Any, loc: Any) -> str:
    """The dotted path of a field in the body. Pydantic puts the tag of a discriminated
    union (`strategy.top_p.temperature` for a `top_p` strategy) in the location; the
    client's path to the field has none (`strategy.temperature`)."""
    names: list[str] = []
    current = body
    for i, part in enumerate(loc):
        if i == 0 and part == "body":
            continue
        if (
            isinstance(current, dict)
            and isinstance(part, str)
            and part in (current.get("type"), current.get("role"))
            and i + 1 < len(loc)
            # A field of the same name as the tag (`top_p` of a `top_p` strategy) is the
            # tag's field only when the location goes on into it.
            and not isinstance(current.get(part), (dict, list))
        ):
            continue  # a union's tag, not a field
        names.append(f"[{part}]" if isinstance(part, int) else str(part))
        if isinstance(current, dict):
            current = current.get(part) if isinstance(part, str) else None
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return ".".join(names).replace(".[", "[")


def _validation_error(exc: RequestValidationError) -> tuple[BadRequestError, dict[str, Any]]:
    """The 400 of a body that does not validate, and its response body."""
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        err = _json_error(exc, errors[0])
        return err, error_body(err)
    parts = []
    first_field = None
    for e in errors:
        field = _field_path(exc.body, e.get("loc", ())) or "body"
        first_field = first_field or field
        given = e.get("input")
        got = (
            f" (got {given!r})"
            if isinstance(given, (int, float, str)) and e.get("type") in _RANGE_ERRORS
            else ""
        )
        parts.append(f"{field}: {e.get('msg')}{got}")
    err = BadRequestError("invalid request: " + "; ".join(parts), field=first_field)
    body = error_body(err)
    body["errors"] = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors
    ]
    return err, body


def _unauthenticated(presented: bool) -> JSONResponse:
    # RFC 6750: a challenge naming the scheme; `invalid_token` when one was presented.
    # The body says the same whatever failed (unknown key, expiry, signature ...).
    challenge = 'Bearer realm="llama-stack"'
    if presented:
        challenge += ', error="invalid_token"'
    return JSONResponse(
        status_code=401,
        content=error_body(AuthenticationError(FAILED)),
        headers={"WWW-Authenticate": challenge},
    )


def _route_path(scope: Any) -> str:
    # Under a Serve route prefix the path may carry it (`root_path`): the routes do not.
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "") or "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


class RequestContextMiddleware:
    """Authenticates each HTTP request (when the stack has `server.auth`) and builds its
    `RequestContext` from its headers and caller (pure ASGI, so the context variable it
    sets is visible to the endpoint and travels with every call it makes)."""

    def __init__(
        self,
        app: Any,
        authenticator: Authenticator | None = None,
        quota: QuotaCounter | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.quota = quota

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = None
        path = _route_path(scope)
        # The playground's page and assets hold no data: the page asks for a token and
        # sends it with every API call.
        public = path in PUBLIC_PATHS or path == "/playground" or path.startswith("/playground/")
        if self.authenticator is not None and not public:
            presented = bearer_token(scope)
            if presented is None:
                await _unauthenticated(False)(scope, receive, send)
                return
            try:
                user = await self.authenticator.authenticate(presented, scope)
            except Exception as exc:
                reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                logger.info("refused %s %s: %s", scope.get("method"), scope.get("path"), reason)
                await _unauthenticated(True)(scope, receive, send)
                return
            telemetry.tag_caller(user)
        if self.quota is not None and not public:
            client = scope.get("client")
            caller = user.principal if user else (client[0] if client else "unknown")
            try:
                await asyncio.to_thread(self.quota.check, caller, user is not None)
            except Exception as exc:  # over quota (429), or the store is down (503)
                await error_response(to_stack_error(exc))(scope, receive, send)
                return
        header = None
        wanted = PROVIDER_DATA_HEADER.lower().encode()
        for name, value in scope.get("headers", ()):
            if name == wanted:
                header = value.decode("latin-1")
                break
        try:
            ctx = RequestContext(provider_data=parse_provider_data(header), user=user)
        except StackError as err:
            await error_response(err)(scope, receive, send)
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
    redaction.install(stack)
    b = dict(clients)
    served = set(stack.apis)
    route_apis: dict[str, Api] = {}

    quota = stack.server.quota
    app.add_middleware(
        RequestContextMiddleware,
        authenticator=build_authenticator(stack.server.auth),
        quota=QuotaCounter(quota) if quota is not None else None,
    )
    app.add_middleware(telemetry.TracingMiddleware)

    @app.exception_handler(StackError)
    async def _stack_error(request: Request, exc: StackError) -> JSONResponse:
        log_request_error(request.method, request.url.path, exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err, body = _validation_error(exc)
        log_request_error(request.method, request.url.path, err)
        return JSONResponse(status_code=400, content=body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # Routing's own answers (no such route, a method the route does not take) in the
        # stack's error shape, naming what was asked for.
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            err: StackError = NotFoundError(
                f"no route {where}; GET /v1/inspect/routes lists the routes"
            )
        elif exc.status_code == 405:
            err = MethodNotAllowedError(f"{where}: the route does not take {request.method}")
        else:
            err = StackError(f"{where}: {exc.detail}")
            err.status_code = exc.status_code
        log_request_error(request.method, request.url.path, err)
        return JSONResponse(
            status_code=err.status_code, content=error_body(err), headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> JSONResponse:
        err = to_stack_error(exc)
        log_request_error(request.method, request.url.path, err)
        return error_response(err)

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
                        config=redact(p.config),
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
