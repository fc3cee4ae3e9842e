"""`RemoteClient`: HTTP to the service behind one remote inference provider.

It holds what every call needs: the base URL, the credential (the configured one, or a
per-request one from the request's provider data), TLS verification, timeouts and
bounded retries. What goes wrong reaches clients as the stack's own errors, naming the
provider:

| what happened                                   | error                           |
| ----------------------------------------------- | ------------------------------- |
| connection refused, reset or closed unanswered  | `ServiceUnavailableError` (503) |
| no connection or no answer within the timeouts  | `ProviderTimeoutError` (504)    |
| the service answered 400/422, 401, 403, 404,    | `BadRequestError`, `AuthenticationError`, |
| 409, 429 (any other 4xx is a `BadRequestError`) | `PermissionDeniedError`, `NotFoundError`, |
|                                                 | `ConflictError`, `QuotaExceededError`     |
| the service answered 5xx                        | `ProviderError` (502)           |

Only failures to connect and 429/503 answers are retried (with exponential backoff): any
other failure may come after the service started serving the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from stackray import __version__
from stackray.api.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    ServiceUnavailableError,
    StackError,
)
from stackray.runtime import telemetry
from stackray.runtime.request_context import current_provider_data

logger = logging.getLogger("stackray.providers.remote")

RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_DELAY_S = 10.0
"""A longer wait (say a long Retry-After) is left to the client: the error goes back at once."""

_MISSING_ROUTE = frozenset({404, 405})

# Failures before the service saw the request: safe to retry.
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.WriteError)

_STATUS_ERRORS: dict[int, type[StackError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ProviderTimeoutError,
    409: ConflictError,
    422: BadRequestError,
    429: QuotaExceededError,
}


def upstream_error(provider_id: str, where: str, status: int, message: str) -> StackError:
    """The error a client sees when the service answered `status` with `message`."""
    text = f"provider '{provider_id}': {where} answered {status}: {message}"
    if status >= 500:
        return ProviderError(text, provider_id=provider_id)
    return _STATUS_ERRORS.get(status, BadRequestError)(text)


def upstream_message(response: httpx.Response) -> str:
    """The message in an error answer: OpenAI's, Ollama's, FastAPI's shape, or the text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    return _error_text(data)


def _error_text(data: Any) -> str:
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        for key in ("message", "detail"):
            value = data.get(key)
            if value:
                return value if isinstance(value, str) else json.dumps(value)[:500]
    return json.dumps(data)[:500]


def _stream_error(provider_id: str, where: str, data: Any) -> StackError:
    """An error the service reported inside a stream, after its 200 status line."""
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and 400 <= code <= 599:
        return upstream_error(provider_id, where, code, _error_text(data))
    return ProviderError(
        f"provider '{provider_id}': {where} failed mid-stream: {_error_text(data)}",
        provider_id=provider_id,
    )


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of each server-sent event; comments and other fields are skipped."""
    event = "message"
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event, "\n".join(data)


class Transport(Protocol):
    """What an adapter sends OpenAI-shaped requests through (`RemoteClient` over HTTP)."""

    base_url: str

    async def request_json(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> Any: ...

    async def stream_sse(self, path: str, body: Any) -> AsyncGenerator[Any, None]: ...

    async def aclose(self) -> None: ...


class RemoteClient:
    """HTTP to one remote service, with the provider's credentials, timeouts and retries."""

    def __init__(
        self,
        provider_id: str,
        base_url: str,
        *,
        api_key: SecretStr | None = None,
        provider_data_key: str | None = None,
        requires_api_key: bool = False,
        tls_verify: bool | str = True,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
        max_connections: int = 256,
    ) -> None:
        self.provider_id = provider_id
        self.base_url = base_url.rstrip("/")
        self.provider_data_key = provider_data_key
        self.requires_api_key = requires_api_key
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        # Keep as many connections alive as may be in use: with httpx's default of 20, the
        # requests beyond 20 in flight each opened and closed a connection of their own.
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=tls_verify)
            if isinstance(tls_verify, str)
            else tls_verify
        )
        # An httpx client's pooled connections belong to the event loop that opened them;
        # a provider used from several loops (a unit test's setup and its server) keeps one
        # client per loop. A Serve replica has one loop, hence one client.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # ---- credentials ----------------------------------------------------------------------

    def api_key(self) -> str | None:
        """The key for this request: the request's provider data first, then the config."""
        key = self.provider_data_key
        data = current_provider_data()
        if key and isinstance(data, dict) and data.get(key) is not None:
            value = data[key]
            if not isinstance(value, str):
                raise BadRequestError(
                    f"provider data {key!r} must be a string, got {type(value).__name__}"
                )
            if value:
                return value
        if self._api_key is not None and self._api_key.get_secret_value():
            return self._api_key.get_secret_value()
        if self.requires_api_key:
            hint = f", or send {key!r} in the X-LlamaStack-Provider-Data header" if key else ""
            raise BadRequestError(
                f"provider '{self.provider_id}' has no API key: set api_key in its config{hint}"
            )
        return None

    def _headers(self) -> dict[str, str]:
        key = self.api_key()
        headers = telemetry.trace_headers()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # ---- requests -------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                base_url=self.base_url + "/",
                timeout=self._timeout,
                verify=self._verify,
                follow_redirects=True,
                limits=self._limits,
                headers={"User-Agent": f"stackray/{__version__}"},
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the connections opened from the running event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _transport_error(self, exc: httpx.TransportError, where: str, tries: int) -> StackError:
        detail = str(exc) or type(exc).__name__
        after = f" after {tries} tries" if tries > 1 else ""
        if isinstance(exc, httpx.ConnectTimeout):
            return ProviderTimeoutError(
                f"provider '{self.provider_id}': could not connect to {where} within "
                f"{self._timeout.connect}s{after}"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeoutError(
                f"provider '{self.provider_id}': {where} sent nothing for {self._timeout.read}s"
            )
        if isinstance(exc, (*_CONNECT_ERRORS, httpx.RemoteProtocolError)):
            return ServiceUnavailableError(
                f"provider '{self.provider_id}': cannot reach {where}: {detail}{after}"
            )
        return ProviderError(
            f"connection to {where} failed: {detail}", provider_id=self.provider_id
        )

    def _retry_delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before try `attempt + 2`, or None to give up now."""
        if attempt >= self.max_retries:
            return None
        delay = self.retry_backoff_s * 2**attempt
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass  # an HTTP date: keep the backoff
        if delay > MAX_RETRY_DELAY_S:
            return None
        return delay + random.uniform(0, delay / 4)

    async def _send(
        self, method: str, path: str, body: Any = None, *, allowed: frozenset[int] = frozenset()
    ) -> httpx.Response:
        """Send with retries: a successful response, its body not yet read, or one whose
        error status is in `allowed`, already read and closed."""
        headers = self._headers()
        http = self._http()
        attempt = 0
        while True:
            request = http.build_request(method, path, json=body, headers=headers)
            where = f"{method} {request.url}"
            try:
                response = await http.send(request, stream=True)
            except httpx.TransportError as exc:
                delay = (
                    self._retry_delay(attempt, None) if isinstance(exc, _CONNECT_ERRORS) else None
                )
                if delay is None:
                    raise self._transport_error(exc, where, attempt + 1) from None
                logger.info(
                    "provider %r: %s: %s; retrying in %.2fs", self.provider_id, where, exc, delay
                )
                await asyncio.sleep(delay)
                attempt += 1
                continue
            status = response.status_code
            if status < 400:
                return response
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise self._transport_error(exc, where, attempt + 1) from None
            finally:
                await response.aclose()
            if status in allowed:
                return response
            delay = self._retry_delay(attempt, response) if status in RETRY_STATUSES else None
            if delay is None:
                raise upstream_error(self.provider_id, where, status, upstream_message(response))
            logger.info(
                "provider %r: %s answered %d; retrying in %.2fs",
                self.provider_id,
                where,
                status,
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1

    def _decode(self, text: str, where: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise ProviderError(
                f"{where} answered with something that is not JSON: {text[:200]!r}",
                provider_id=self.provider_id,
            ) from None

    async def request_json(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> Any:
        """The JSON answer to one request (None for a missing route with `missing_ok`)."""
        response = await self._send(
            method, path, body, allowed=_MISSING_ROUTE if missing_ok else frozenset()
        )
        if response.status_code in _MISSING_ROUTE:
            return None
        where = f"{method} {response.request.url}"
        try:
            await response.aread()
        except httpx.TransportError as exc:
            raise self._transport_error(exc, where, 1) from None
        finally:
            await response.aclose()
        return self._decode(response.text, where)

    async def stream_sse(self, path: str, body: Any) -> AsyncGenerator[Any, None]:
        """POST `body` and return the JSON data of its server-sent events, up to ``[DONE]``.

        Awaiting this sends the request: failures to connect and error statuses raise
        here, before the first event.
        """
        return self._sse(await self._send("POST", path, body))

    async def _sse(self, response: httpx.Response) -> AsyncGenerator[Any, None]:
        where = f"POST {response.request.url}"
        try:
            async for event, data in _sse_events(response.aiter_lines()):
                if data == "[DONE]":
                    return
                payload = self._decode(data, where)
                if event == "error" or (isinstance(payload, dict) and payload.get("error")):
                    raise _stream_error(self.provider_id, where, payload)
                yield payload
        except httpx.TransportError as exc:
            raise self._transport_error(exc, where, 1) from None
        finally:
            await response.aclose()

    async def stream_json_lines(self, path: str, body: Any) -> AsyncGenerator[Any, None]:
        """POST `body` and return the JSON objects of its answer, one per line (Ollama's
        streaming). As with `stream_sse`, awaiting this sends the request."""
        return self._json_lines(await self._send("POST", path, body))

    async def _json_lines(self, response: httpx.Response) -> AsyncGenerator[Any, None]:
        where = f"POST {response.request.url}"
        try:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                payload = self._decode(line, where)
                if isinstance(payload, dict) and payload.get("error"):
                    raise _stream_error(self.provider_id, where, payload)
                yield payload
        except httpx.TransportError as exc:
            raise self._transport_error(exc, where, 1) from None
        finally:
            await response.aclose()
