"""How one part of the stack calls another: `ApiClient`, the only client type.

A router holds an `ApiClient` for every API or provider it calls, whether the callee runs
in this process (`LocalTransport`: unit tests, the inference router built inside a
deployment) or in another Serve deployment (a handle transport, in `stackray.deployments`).
Both are awaited the same way: ``await client.chat_completion(req)``; a method whose name
ends in ``_stream`` is an async generator: ``async for chunk in client.x_stream(req)``.

The current request context (principal, provider data, trace context) travels with every
call. The receiving side runs the method through `call_in_context` / `stream_in_context`,
which set that context and open the call's span. Nothing here imports Ray.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from stackray.runtime import telemetry
from stackray.runtime.request_context import RequestContext, request_context_var, use_context

STREAM_BATCH_INTERVAL_S = 0.005
"""After the first chunk of a stream (sent at once), chunks that arrive within this
interval of each other cross a hop together, as one list: a fast stream (a remote
adapter reading a burst of SSE lines) pays one transfer per burst instead of one per
chunk, and time to first chunk does not change."""
STREAM_BATCH_MAX = 64


class Transport(Protocol):
    """Carries calls to one callee (an object here, or a deployment there)."""

    async def call(self, method: str, *args: Any, ctx: RequestContext | None = None) -> Any: ...

    def stream(
        self, method: str, *args: Any, ctx: RequestContext | None = None
    ) -> AsyncIterator[Any]: ...


def public_method(target: Any, method: str) -> Callable[..., Any]:
    """`target.method`, which callers across a transport may only name when public."""
    if method.startswith("_"):
        raise AttributeError(f"{method} is not a public method")
    return getattr(target, method)  # type: ignore[no-any-return]


async def call_in_context(
    target: Any,
    ctx: RequestContext | None,
    method: str,
    *args: Any,
    deployment: str | None = None,
    colocated: bool = False,
) -> Any:
    """Await `target.method(*args)` with `ctx` as the current request context, in a span
    named after `deployment` (this process's deployment when None) when `ctx` is traced
    (`colocated`: see `telemetry.start_call_span`). A method declared plain (a registry
    read such as ``get_model``) runs inline; the caller awaits the call either way."""
    span = telemetry.start_call_span(ctx, deployment, method, colocated=colocated)
    try:
        with use_context(ctx), telemetry.activate(span):
            fn = public_method(target, method)
            if inspect.iscoroutinefunction(fn):
                result = await fn(*args)
            else:
                result = fn(*args)
    except Exception as exc:
        telemetry.fail(span, exc)
        raise
    finally:
        telemetry.end(span)
    return result


async def stream_in_context(
    target: Any,
    ctx: RequestContext | None,
    method: str,
    *args: Any,
    deployment: str | None = None,
    colocated: bool = False,
) -> AsyncIterator[Any]:
    """Iterate `target.method(*args)` with `ctx` set around each step; the call's span
    ends when the stream does.

    Set per step, not around the whole loop: the consumer may resume the iterator from
    another task (Starlette streams responses from its own task).
    """
    span = telemetry.start_call_span(ctx, deployment, method, colocated=colocated)
    try:
        with use_context(ctx), telemetry.activate(span):
            iterator = public_method(target, method)(*args).__aiter__()
        while True:
            with use_context(ctx), telemetry.activate(span):
                try:
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    return
            yield item
    except Exception as exc:
        telemetry.fail(span, exc)
        raise
    finally:
        telemetry.end(span)


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


async def coalesce(
    stream: AsyncIterator[Any],
    interval_s: float = STREAM_BATCH_INTERVAL_S,
    max_items: int = STREAM_BATCH_MAX,
) -> AsyncIterator[list[Any]]:
    """`stream`'s items as lists: the first item alone and at once, then whatever
    arrives within `interval_s` of the previous batch's first item (at most `max_items`).

    The producer runs ahead in its own task, so a slow hop downstream does not slow it.
    An error of `stream` is raised after the items that came before it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in stream:
                queue.put_nowait(item)
        except BaseException as exc:  # re-raised on the consumer's side
            queue.put_nowait(_Raised(exc))
        else:
            queue.put_nowait(_END)

    task = asyncio.ensure_future(pump())
    first = True
    try:
        while True:
            item = await queue.get()
            batch: list[Any] = []
            deadline = loop.time() + interval_s
            while True:
                if item is _END or isinstance(item, _Raised):
                    if batch:
                        yield batch
                    if isinstance(item, _Raised):
                        raise item.exc
                    return
                batch.append(item)
                if first or len(batch) >= max_items:
                    break
                try:
                    item = queue.get_nowait()
                    continue
                except asyncio.QueueEmpty:
                    pass
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
            first = False
            yield batch
    finally:
        if not task.done():
            task.cancel()


class LocalTransport:
    """Calls an object in this process (`name`: the deployment it stands for, in spans).

    `colocated`: the object is a router running inside another deployment's replica (the
    inference router inside the gateway or agents): spans keep `name` in their names but
    are attributed to the hosting deployment."""

    def __init__(self, target: Any, name: str | None = None, *, colocated: bool = False) -> None:
        self.target = target
        self.name = name
        self.colocated = colocated

    async def call(self, method: str, *args: Any, ctx: RequestContext | None = None) -> Any:
        return await call_in_context(
            self.target, ctx, method, *args, deployment=self.name, colocated=self.colocated
        )

    def stream(
        self, method: str, *args: Any, ctx: RequestContext | None = None
    ) -> AsyncIterator[Any]:
        return stream_in_context(
            self.target, ctx, method, *args, deployment=self.name, colocated=self.colocated
        )


class ApiClient:
    """Another API, model server or index owner, seen as a local object.

    ``await client.chat_completion(req)`` calls the callee's method;
    ``client.chat_completion_stream(req)`` iterates the callee's async generator. The
    current request context travels with each call.
    """

    def __init__(self, transport: Transport, name: str) -> None:
        self.transport = transport
        self.name = name

    def __repr__(self) -> str:
        return f"ApiClient({self.name!r}, {type(self.transport).__name__})"

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        transport = self.transport
        if method.endswith("_stream"):

            def streamer(*args: Any) -> AsyncIterator[Any]:
                ctx = telemetry.outgoing(request_context_var.get())
                return transport.stream(method, *args, ctx=ctx)

            return streamer

        async def caller(*args: Any) -> Any:
            ctx = telemetry.outgoing(request_context_var.get())
            return await transport.call(method, *args, ctx=ctx)

        return caller


def local_client(target: Any, name: str, *, colocated: bool = False) -> ApiClient:
    """An `ApiClient` for `target` in this process."""
    return ApiClient(LocalTransport(target, name, colocated=colocated), name)
