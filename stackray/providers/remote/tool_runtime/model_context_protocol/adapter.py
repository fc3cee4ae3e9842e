"""`remote::model-context-protocol`: the tools of MCP servers, over SSE or streamable HTTP.

Listings and calls go over an MCP session to the group's endpoint, opened with the HTTP
headers the request's provider data gives for that endpoint (``mcp_headers``). Sessions
are kept open for a while and reused by calls with the same endpoint and headers (see
`sessions`), so one user's credentials never serve another user's call. Tool results (text, images, embedded
resources) become a `ToolInvocationResult`; a tool that reports an error gives a result
with `error_message`, while an endpoint that cannot be reached, refuses the credentials
or times out raises the matching `StackError`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from stackray.api.common import (
    URL,
    ImageContentItem,
    InterleavedContentItem,
    JsonValue,
    TextContentItem,
    URLOrData,
)
from stackray.api.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    ServiceUnavailableError,
    StackError,
)
from stackray.api.tools import (
    ListToolDefsResponse,
    ToolDef,
    ToolGroup,
    ToolInvocationResult,
    ToolParameter,
)
from stackray.providers.remote.tool_runtime.model_context_protocol.config import (
    MCPProviderConfig,
    MCPProviderDataValidator,
)
from stackray.providers.remote.tool_runtime.model_context_protocol.sessions import (
    SessionGone,
    SessionOpenError,
    SessionPool,
)
from stackray.runtime.request_context import PROVIDER_DATA_HEADER, current_provider_data

if TYPE_CHECKING:
    from mcp import ClientSession

    from stackray.runtime.resolver import ProviderContext

logger = logging.getLogger("stackray.providers.mcp")

T = TypeVar("T")

MAX_LIST_PAGES = 100

# JSON-RPC error codes (the MCP spec uses JSON-RPC 2.0's).
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
CONNECTION_CLOSED = -32000  # the `mcp` package's code for a transport that closed


class _FallBackToSSE(Exception):
    """The endpoint does not speak streamable HTTP (it answered 400/404/405)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"answered {status}")
        self.status = status


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups raised by anyio task groups."""
    inner = getattr(exc, "exceptions", None)  # a BaseExceptionGroup (Python 3.11+, or backport)
    while isinstance(inner, tuple) and inner:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc


def endpoint_headers(uri: str) -> dict[str, str]:
    """The headers the request's provider data gives for `uri` (``mcp_headers``)."""
    data = current_provider_data()
    if not data or "mcp_headers" not in data:
        return {}
    try:
        parsed = MCPProviderDataValidator.model_validate(data)
    except ValueError:
        raise BadRequestError(
            "mcp_headers in the provider data must map each MCP endpoint URI to "
            '{header: value} (or to ["Header: value", ...])',
            field=f"{PROVIDER_DATA_HEADER}.mcp_headers",
        ) from None
    by_uri = parsed.mcp_headers or {}
    wanted = by_uri.get(uri)
    if wanted is None:
        wanted = by_uri.get(uri.rstrip("/")) or by_uri.get(uri.rstrip("/") + "/")
    if wanted is None:
        return {}
    if isinstance(wanted, dict):
        return dict(wanted)
    headers: dict[str, str] = {}
    for line in wanted:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BadRequestError(
                f"mcp_headers for {uri}: {line!r} is not 'Header: value'",
                field=f"{PROVIDER_DATA_HEADER}.mcp_headers",
            )
        headers[name.strip()] = value.strip()
    return headers


def _parameter_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None:
        for key in ("anyOf", "oneOf"):
            for option in schema.get(key) or []:
                if isinstance(option, dict) and option.get("type") not in (None, "null"):
                    return _parameter_type(option)
    return str(kind) if kind else "string"


def tool_def(tool: Any, uri: str) -> ToolDef:
    """An MCP tool as a `ToolDef`: its input schema's properties as parameters."""
    schema = tool.input_schema or {}
    required = set(schema.get("required") or [])
    parameters = [
        ToolParameter(
            name=name,
            parameter_type=_parameter_type(prop if isinstance(prop, dict) else {}),
            description=(prop.get("description") or prop.get("title") or "")
            if isinstance(prop, dict)
            else "",
            required=name in required,
            default=prop.get("default") if isinstance(prop, dict) else None,
        )
        for name, prop in (schema.get("properties") or {}).items()
    ]
    metadata: dict[str, JsonValue] = {"endpoint": uri}
    if tool.title:
        metadata["title"] = tool.title
    return ToolDef(
        name=tool.name, description=tool.description, parameters=parameters, metadata=metadata
    )


def _content_item(block: Any) -> InterleavedContentItem:
    kind = getattr(block, "type", None)
    if kind == "text":
        return TextContentItem(text=block.text)
    if kind == "image":
        return ImageContentItem(image=URLOrData(data=block.data))
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return TextContentItem(text=text)
        mime = resource.mime_type or ""
        if mime.startswith("image/"):
            return ImageContentItem(image=URLOrData(data=resource.blob))
        return TextContentItem(text=f"[resource {resource.uri} ({mime or 'binary'})]")
    if kind == "resource_link":
        return TextContentItem(text=f"[resource {block.uri}: {block.name}]")
    if kind == "audio":
        return TextContentItem(text=f"[audio ({block.mime_type})]")
    return TextContentItem(text=f"[{kind} content]")


def invocation_result(result: Any) -> ToolInvocationResult:
    """An MCP `CallToolResult` as a `ToolInvocationResult`."""
    items = [_content_item(block) for block in result.content]
    metadata: dict[str, JsonValue] | None = None
    if result.structured_content is not None:
        metadata = {"structured_content": result.structured_content}
    if result.is_error:
        message = " ".join(i.text for i in items if isinstance(i, TextContentItem)) or "tool error"
        return ToolInvocationResult(
            content=items, error_message=message, error_code=1, metadata=metadata
        )
    return ToolInvocationResult(content=items, metadata=metadata)


class MCPToolRuntimeAdapter:
    """Lists and calls the tools of the MCP server a tool group points at."""

    mcp = True

    def __init__(
        self, config: MCPProviderConfig, deps: dict[Any, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.provider_id = context.provider_id
        self.pool = (
            SessionPool(config.session_idle_s, config.max_sessions)
            if config.session_idle_s > 0
            else None
        )
        # Endpoints found to speak only SSE (in auto mode, after trying streamable HTTP).
        self._sse_endpoints: set[str] = set()

    async def list_runtime_tools(self, group: ToolGroup) -> ListToolDefsResponse:
        uri = self._uri(group)

        async def list_all(session: ClientSession) -> list[ToolDef]:
            from mcp.types import PaginatedRequestParams

            defs: list[ToolDef] = []
            cursor: str | None = None
            for _ in range(MAX_LIST_PAGES):
                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                result = await session.list_tools(params=params)
                defs.extend(tool_def(t, uri) for t in result.tools)
                cursor = result.next_cursor
                if not cursor:
                    break
            return defs

        return ListToolDefsResponse(data=await self._with_session(uri, list_all))

    async def invoke_tool(
        self, tool_name: str, kwargs: dict[str, JsonValue], group: ToolGroup
    ) -> ToolInvocationResult:
        uri = self._uri(group)

        async def call(session: ClientSession) -> ToolInvocationResult:
            return invocation_result(await session.call_tool(tool_name, dict(kwargs)))

        return await self._with_session(uri, call)

    # ---- sessions -----------------------------------------------------------------------

    @staticmethod
    def _uri(group: ToolGroup) -> str:
        endpoint: URL | None = group.mcp_endpoint
        if endpoint is None:
            raise BadRequestError(
                f"tool group {group.identifier!r} has no mcp_endpoint", field="mcp_endpoint"
            )
        return endpoint.uri

    def _transport(self, uri: str) -> str:
        if self.config.transport != "auto":
            return self.config.transport
        path = uri.split("?", 1)[0].rstrip("/")
        return "sse" if path.endswith("/sse") else "streamable_http"

    async def _with_session(self, uri: str, fn: Callable[[ClientSession], Awaitable[T]]) -> T:
        import anyio

        headers = endpoint_headers(uri)
        transport = self._transport(uri)
        try:
            with anyio.fail_after(self.config.timeout_s):
                if transport == "streamable_http" and uri not in self._sse_endpoints:
                    try:
                        return await self._call(uri, "streamable_http", headers, fn)
                    except _FallBackToSSE as fallback:
                        if self.config.transport == "streamable_http":
                            raise self._status_error(uri, fallback.status) from None
                        logger.info("%s does not speak streamable HTTP; using SSE", uri)
                        self._sse_endpoints.add(uri)
                return await self._call(uri, "sse", headers, fn)
        except TimeoutError:
            raise ProviderTimeoutError(
                f"provider '{self.provider_id}': MCP endpoint {uri} did not answer within "
                f"{self.config.timeout_s}s"
            ) from None

    async def _call(
        self,
        uri: str,
        transport: str,
        headers: dict[str, str],
        fn: Callable[[ClientSession], Awaitable[T]],
    ) -> T:
        """`fn` over a session to `uri`: a pooled one, or (pooling off) one of its own.
        A reused session found broken (the server restarted, the connection dropped) is
        replaced once; failures become `StackError`s."""
        from mcp.shared.exceptions import MCPError

        if self.pool is None:
            seen: list[int] = []
            try:
                async with self._opener(transport, uri, headers, seen)() as session:
                    return await fn(session)
            except BaseException as exc:
                raise self._failure(exc, uri, seen) from None

        key = (uri, transport, tuple(sorted(headers.items())))
        for attempt in (1, 2):
            statuses: list[int] = []
            try:
                async with self.pool.session(
                    key,
                    lambda entry: self._opener(
                        transport, uri, headers, entry.statuses, entry.saw_status
                    ),
                ) as entry:
                    statuses = entry.statuses
                    reused = entry.calls > 1
                    seen_before = len(statuses)
                    try:
                        return await entry.run(fn(entry.session))  # type: ignore[arg-type]
                    except BaseException as exc:
                        new_statuses = statuses[seen_before:]
                        leaf = _leaf(exc)
                        if (
                            not isinstance(leaf, MCPError)
                            or new_statuses
                            or leaf.error.code == CONNECTION_CLOSED
                        ):
                            self.pool.drop(entry)  # broken, or the server forgot it
                        if (
                            reused
                            and attempt == 1
                            and isinstance(exc, Exception)
                            and self._session_gone(leaf, new_statuses)
                        ):
                            logger.info("MCP session to %s was gone; opening a new one", uri)
                            continue
                        raise
            except SessionOpenError as exc:
                raise self._failure(exc.error or exc, uri, exc.statuses) from None
            except BaseException as exc:
                raise self._failure(exc, uri, statuses) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _session_gone(exc: BaseException, new_statuses: list[int]) -> bool:
        """Whether a call failed because its reused session no longer exists (the server
        restarted or closed it while idle), so that it is sent again over a new one."""
        import anyio
        import httpx2
        from mcp.shared.exceptions import MCPError

        if isinstance(exc, SessionGone) or 404 in new_statuses:  # an unknown session id
            return True
        if isinstance(exc, MCPError) and exc.error.code == CONNECTION_CLOSED:
            return True
        return isinstance(
            exc,
            httpx2.TransportError | anyio.ClosedResourceError | anyio.BrokenResourceError,
        )

    def _failure(self, exc: BaseException, uri: str, statuses: list[int]) -> BaseException:
        """What to raise for `exc`: cancellation as it is, everything else a `StackError`."""
        leaf = _leaf(exc)
        if isinstance(leaf, _FallBackToSSE):
            return leaf
        if isinstance(leaf, StackError):
            return leaf
        if not isinstance(exc, Exception) and not isinstance(leaf, Exception):
            return exc  # cancellation and the like
        return self._error(leaf, uri, statuses)

    def _client_factory(self, on_error: Callable[[int], None]) -> Callable[..., Any]:
        import httpx2

        async def record(response: httpx2.Response) -> None:
            if response.status_code >= 400:
                on_error(response.status_code)

        def factory(
            headers: dict[str, str] | None = None,
            timeout: httpx2.Timeout | None = None,
            auth: httpx2.Auth | None = None,
        ) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(
                headers=headers,
                auth=auth,
                # Reads wait up to the call limit (an SSE stream is quiet between events);
                # the whole call is bounded by `timeout_s` around it.
                timeout=httpx2.Timeout(None, connect=self.config.connect_timeout_s),
                event_hooks={"response": [record]},
            )

        return factory

    def _opener(
        self,
        transport: str,
        uri: str,
        headers: dict[str, str],
        statuses: list[int],
        on_error: Callable[[int], None] | None = None,
    ) -> Callable[[], AbstractAsyncContextManager[ClientSession]]:
        """Opens an initialized session to `uri` over `transport`; HTTP error statuses
        go to `on_error` (by default: appended to `statuses`)."""

        @asynccontextmanager
        async def open_session() -> AsyncIterator[ClientSession]:
            from mcp import ClientSession

            factory = self._client_factory(on_error or statuses.append)
            if transport == "sse":
                from mcp.client.sse import sse_client

                async with sse_client(
                    uri,
                    headers=headers,
                    timeout=self.config.connect_timeout_s,
                    sse_read_timeout=self.config.session_idle_s + self.config.timeout_s,
                    httpx_client_factory=factory,
                ) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        yield session
                return
            from mcp.client.streamable_http import streamable_http_client

            http = factory(headers=headers)
            async with http, streamable_http_client(uri, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    try:
                        await session.initialize()
                    except Exception:
                        if statuses and statuses[-1] in (400, 404, 405):
                            raise _FallBackToSSE(statuses[-1]) from None
                        raise
                    yield session

        return open_session

    async def aclose(self) -> None:
        """Close the pooled sessions of the running event loop."""
        if self.pool is not None:
            await self.pool.close()

    # ---- errors -------------------------------------------------------------------------

    def _status_error(self, uri: str, status: int) -> StackError:
        where = f"provider '{self.provider_id}': MCP endpoint {uri} answered {status}"
        if status == 401:
            return AuthenticationError(
                f"{where}: send its credentials as mcp_headers {{{uri!r}: {{header: value}}}} "
                f"in the {PROVIDER_DATA_HEADER} header"
            )
        if status == 403:
            return PermissionDeniedError(f"{where}: the credentials sent are not allowed")
        if status in (400, 404, 405):
            return NotFoundError(f"{where}: no MCP server there", field="mcp_endpoint")
        if status == 429:
            from stackray.api.errors import QuotaExceededError

            return QuotaExceededError(where)
        if status == 503:
            return ServiceUnavailableError(where)
        return ProviderError(where, provider_id=self.provider_id)

    def _error(self, exc: BaseException, uri: str, statuses: list[int]) -> StackError:
        import httpx2

        if isinstance(exc, TimeoutError):
            return ProviderTimeoutError(
                f"provider '{self.provider_id}': MCP endpoint {uri} did not answer within "
                f"{self.config.timeout_s}s"
            )
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderTimeoutError(
                f"provider '{self.provider_id}': MCP endpoint {uri} timed out ({type(exc).__name__})"
            )
        if isinstance(exc, httpx2.HTTPStatusError):
            return self._status_error(uri, exc.response.status_code)
        if statuses:
            return self._status_error(uri, statuses[-1])
        if isinstance(exc, httpx2.TransportError):
            return ServiceUnavailableError(
                f"provider '{self.provider_id}': cannot reach MCP endpoint {uri}: "
                f"{exc or type(exc).__name__}"
            )
        from mcp.shared.exceptions import MCPError

        if isinstance(exc, MCPError):
            text = f"provider '{self.provider_id}': MCP endpoint {uri}: {exc.error.message}"
            if exc.error.code == INVALID_PARAMS:
                return BadRequestError(text, field="kwargs")
            if exc.error.code == METHOD_NOT_FOUND:
                return NotFoundError(text)
            return ProviderError(text, provider_id=self.provider_id)
        return ProviderError(
            f"MCP endpoint {uri}: {type(exc).__name__}: {exc}", provider_id=self.provider_id
        )
