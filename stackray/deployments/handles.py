"""Calls across Serve deployments: the handle transport, and the entry points every
replica serves.

A caller holds an `ApiClient` over a `HandleTransport`; the callee replica's `call_api` /
`call_api_stream` run the named method in the caller's request context. Streams cross
the hop as lists of chunks (`coalesce`), flattened again on the caller's side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from stackray.runtime.calls import ApiClient, call_in_context, coalesce, stream_in_context
from stackray.runtime.errors import is_unavailable, unwrap
from stackray.runtime.request_context import RequestContext

# Methods that only read (or compute without storing): safe to send again to another
# replica when the one that had the call died or was restarting.
READ_PREFIXES = (
    "get_",
    "list_",
    "query_",
    "health",
    "openai_list_",
    "openai_retrieve_",
    "openai_search_",
    "embeddings",
    "openai_embeddings",
    "upload_limit",
)
# Attempts of a read in all, and the pause before each retry (seconds, doubled each time):
# long enough for Serve to route around a dead replica, short beside a client's timeout.
READ_ATTEMPTS = 3
RETRY_PAUSE_S = 0.05


def is_read(method: str) -> bool:
    return method.startswith(READ_PREFIXES)


class HandleTransport:
    """Calls a Serve deployment (a `Dispatcher`) through its `DeploymentHandle`.

    A read (`is_read`) whose replica is gone or restarting is sent again (Serve picks
    another replica); a write is not, so it is never applied twice."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._streaming = handle.options(stream=True)

    async def call(self, method: str, *args: Any, ctx: RequestContext | None = None) -> Any:
        attempts = READ_ATTEMPTS if is_read(method) else 1
        for attempt in range(attempts):
            try:
                return await self.handle.call_api.remote(ctx, method, *args)
            except Exception as exc:
                if attempt + 1 == attempts or not is_unavailable(unwrap(exc)):
                    raise
            await asyncio.sleep(RETRY_PAUSE_S * 2**attempt)
        raise AssertionError("unreachable")

    async def stream(
        self, method: str, *args: Any, ctx: RequestContext | None = None
    ) -> AsyncIterator[Any]:
        async for batch in self._streaming.call_api_stream.remote(ctx, method, *args):
            for item in batch:
                yield item


def handle_client(handle: Any, name: str) -> ApiClient:
    """An `ApiClient` of the deployment behind `handle`."""
    return ApiClient(HandleTransport(handle), name)


class Dispatcher:
    """Mixin for deployment classes: the two entry points every caller uses, serving the
    public methods of `_target()`. Every call carries the `RequestContext` of the request
    it serves."""

    def _target(self) -> Any:
        raise NotImplementedError

    async def call_api(self, ctx: RequestContext | None, method: str, *args: Any) -> Any:
        return await call_in_context(self._target(), ctx, method, *args)

    async def call_api_stream(
        self, ctx: RequestContext | None, method: str, *args: Any
    ) -> AsyncIterator[list[Any]]:
        async for batch in coalesce(stream_in_context(self._target(), ctx, method, *args)):
            yield batch
