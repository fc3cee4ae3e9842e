"""The gateway's API routes, built from the declarations of each API (`ROUTES` in its
`stackray.api` module; see `stackray.api.routes`).

An endpoint validates the path, query and body the declaration names, calls the router
method it names on the deployment of the route's API (`call`), and answers JSON — or,
for a body with ``stream: true``, server-sent events of the declared stream method
(`stream`). The few routes that are more than that name a handler below.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from stackray.api import (
    agents,
    datasetio,
    eval,
    files,
    inference,
    models,
    rag,
    responses,
    safety,
    scoring,
    telemetry,
    tools,
    vector_io,
    vector_stores,
)
from stackray.api.common import URL
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, PayloadTooLargeError
from stackray.api.routes import Route
from stackray.runtime.routers import owner

# Every API's declarations, in the order the gateway adds them.
API_ROUTES: tuple[Route, ...] = (
    *models.ROUTES,
    *inference.ROUTES,
    *vector_io.ROUTES,
    *vector_stores.ROUTES,
    *files.ROUTES,
    *safety.ROUTES,
    *tools.ROUTES,
    *rag.ROUTES,
    *agents.ROUTES,
    *responses.ROUTES,
    *telemetry.ROUTES,
    *datasetio.ROUTES,
    *scoring.ROUTES,
    *eval.ROUTES,
)

# What a multipart body may carry besides the file itself (boundaries, headers, purpose).
MULTIPART_OVERHEAD_BYTES = 64 * 1024

Call = Callable[..., Awaitable[Any]]
Stream = Callable[..., Awaitable[Response]]


def json_response(model: BaseModel | None, status_code: int = 200) -> Response:
    """A model as JSON, without unset optional fields (as the contract's clients expect)."""
    if model is None:
        return Response(status_code=status_code, content=b"null", media_type="application/json")
    return Response(
        content=model.model_dump_json(exclude_none=True),
        status_code=status_code,
        media_type="application/json",
    )


def _is_list(annotation: Any) -> bool:
    return annotation is list or any(
        getattr(a, "__origin__", None) is list for a in (annotation, *get_args(annotation))
    )


def _split(values: list[str] | None) -> list[str] | None:
    # llama-stack-client sends a list as one comma-separated value; others repeat it.
    return [v for value in values or [] for v in value.split(",") if v] or None


class RouteBuilder:
    """Adds the endpoints of `Route` declarations to a FastAPI app."""

    def __init__(self, app: FastAPI, call: Call, stream: Stream) -> None:
        self.app = app
        self.call = call
        """``await call(api, method, *args)``: the API deployment's `method`."""
        self.stream = stream
        """``await stream(api, method, *args, openai=False)``: an SSE response of an async
        generator method (``openai=True`` ends it with ``data: [DONE]``)."""
        self.apis: dict[str, Api] = {}
        """Path -> the API it belongs to (for /v1/inspect/routes)."""
        self._upload_limit: int | None = None

    def add(self, route: Route) -> None:
        endpoint = self._endpoint(route)
        responses: dict[int | str, dict[str, Any]] | None = None
        if route.returns is not None:
            responses = {200: {"model": route.returns}}
            if route.stream:
                responses[200]["content"] = {"text/event-stream": {}}
        for path in route.paths:
            self.app.add_api_route(
                path,
                endpoint,
                methods=[route.method],
                response_model=None,
                responses=responses,
                name=route.call,
            )
            self.apis[path] = route.api

    def add_all(self, routes: tuple[Route, ...] = API_ROUTES) -> None:
        for route in routes:
            self.add(route)

    # ---- the generic endpoint ----------------------------------------------------------

    def _endpoint(self, route: Route) -> Callable[..., Awaitable[Response]]:
        target = owner(route.api).value
        handler = getattr(self, f"_handle_{route.handler}") if route.handler else None
        path_params = route.path_params
        lists = {q.name for q in route.query if _is_list(q.annotation)}
        params = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
            for name in path_params
        ]
        if route.body is not None:
            params.append(
                inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=route.body)
            )
        for q in route.query:
            params.append(
                inspect.Parameter(
                    q.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=q.annotation,
                    default=Query(default=q.default),
                )
            )
        if handler is not None:
            params.append(
                inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)
            )

        async def endpoint(**kwargs: Any) -> Response:
            args = [kwargs[name] for name in path_params]
            body = kwargs.get("body")
            if route.body is not None:
                args.append(body)
            for q in route.query:
                value = kwargs[q.name]
                args.append(_split(value) if q.name in lists else value)
            if handler is not None:
                return await handler(target, route, kwargs["request"], args)
            if route.stream is not None and getattr(body, "stream", False):
                return await self.stream(target, route.stream, *args, openai=route.openai)
            result = await self.call(target, route.call, *args)
            return json_response(None if route.empty else result)

        endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        endpoint.__name__ = route.call
        return endpoint

    # ---- handlers: routes that are more than "call, answer JSON" -----------------------

    @staticmethod
    def _with_openai_fields(model: Any) -> dict[str, Any]:
        item: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
        item.update(id=model.identifier, object="model", created=0, owned_by=model.provider_id)
        return item

    async def _handle_model_list(
        self, api: str, route: Route, request: Request, args: list[Any]
    ) -> Response:
        listing = await self.call(api, route.call, *args)
        data = [self._with_openai_fields(m) for m in listing.data]
        return JSONResponse({"object": "list", "data": data})

    async def _handle_model(
        self, api: str, route: Route, request: Request, args: list[Any]
    ) -> Response:
        return JSONResponse(self._with_openai_fields(await self.call(api, route.call, *args)))

    async def _handle_plain_json(
        self, api: str, route: Route, request: Request, args: list[Any]
    ) -> Response:
        return JSONResponse(await self.call(api, route.call, *args))

    async def _handle_file_content(
        self, api: str, route: Route, request: Request, args: list[Any]
    ) -> Response:
        download = await self.call(api, route.call, *args)
        return Response(content=download.content, media_type=download.content_type)

    async def _handle_runtime_tools(
        self, api: str, route: Route, request: Request, args: list[Any]
    ) -> Response:
        # The last argument, `mcp_endpoint`, comes in several forms: read them all.
        endpoint = mcp_endpoint_param(request)
        return json_response(await self.call(api, route.call, *args[:-1], endpoint))

    async def _handle_upload_file(
        self, api: str, route: Route, request: Request, args: list[Any]
    ) -> Response:
        # The body is parsed here rather than by FastAPI, so that a body announcing itself
        # too large is refused before it is read.
        if self._upload_limit is None:  # the files deployment's limit (config): asked once
            self._upload_limit = int(await self.call(api, "upload_limit"))
        most = self._upload_limit
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > most + MULTIPART_OVERHEAD_BYTES:
            raise _too_large(int(declared), most)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequestError(
                "upload a file as multipart/form-data with the fields `file` and `purpose`",
                field="file",
            )
        try:
            form = await request.form(max_files=1, max_fields=16)
        except (MultiPartException, HTTPException) as exc:
            raise BadRequestError(f"invalid multipart body: {exc}", field="file") from None
        try:
            file, purpose = form.get("file"), form.get("purpose")
            if not isinstance(file, StarletteUploadFile):
                raise BadRequestError("the `file` field (a file) is required", field="file")
            if not isinstance(purpose, str) or not purpose:
                raise BadRequestError("the `purpose` field is required", field="purpose")
            # The parser spooled the file to a temporary file: read at most the limit.
            if file.size is not None and file.size > most:
                raise _too_large(file.size, most)
            content = await file.read(most + 1)
            if len(content) > most:
                raise _too_large(len(content), most)
            created = await self.call(
                api, route.call, content, file.filename or "", purpose, file.content_type
            )
        finally:
            await form.close()
        return json_response(created)


def _too_large(size: int, most: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the upload is {size} bytes; the largest file accepted is {most} bytes", field="file"
    )


def mcp_endpoint_param(request: Request) -> URL | None:
    """The `mcp_endpoint` query parameter in each form clients send it:
    ``mcp_endpoint[uri]=...`` (llama-stack-client), ``mcp_endpoint={"uri": ...}`` or a
    plain ``mcp_endpoint=<uri>``."""
    params = request.query_params
    uri = params.get("mcp_endpoint[uri]") or params.get("mcp_endpoint.uri")
    if uri is None:
        raw = params.get("mcp_endpoint")
        if raw is None or raw == "":
            return None
        if raw.lstrip().startswith("{"):
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if not isinstance(value, dict) or not isinstance(value.get("uri"), str):
                raise BadRequestError(
                    'mcp_endpoint must be {"uri": "<url>"} or a URL', field="mcp_endpoint"
                )
            uri = value["uri"]
        else:
            uri = raw
    return URL(uri=uri)
