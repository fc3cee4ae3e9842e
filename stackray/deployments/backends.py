"""One calling convention for the gateway and routers, whether the callee is a Serve
deployment (through its handle) or an object in this process (unit tests, tools).

Methods whose names end in ``_stream`` are async generators; everything else is awaited.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from stackray.api.errors import (
    ProviderError,
    ProviderTimeoutError,
    ServiceUnavailableError,
    StackError,
)
from stackray.runtime import telemetry
from stackray.runtime.request_context import RequestContext, request_context_var, use_context

# Ray's errors for a replica or actor that is gone, restarting or overloaded.
_UNAVAILABLE = {
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "BackPressureError",
    "DeploymentUnavailableError",
    "WorkerCrashedError",
    "NodeDiedError",
}


def unwrap(exc: BaseException) -> BaseException:
    """The original exception of one raised in another Ray actor."""
    for _ in range(5):
        cause = getattr(exc, "cause", None)
        if cause is None or not type(exc).__name__.startswith("RayTaskError"):
            break
        exc = cause
    return exc


def is_unavailable(exc: BaseException) -> bool:
    return any(t.__name__ in _UNAVAILABLE for t in type(exc).__mro__)


def provider_failure(exc: BaseException, provider_id: str) -> StackError:
    """The `StackError` a client sees when provider `provider_id` raised `exc`."""
    exc = unwrap(exc)
    if isinstance(exc, StackError):
        return exc
    if is_unavailable(exc):
        return ServiceUnavailableError(
            f"provider '{provider_id}' is unavailable: {type(exc).__name__}: {exc}"
        )
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ProviderTimeoutError(f"provider '{provider_id}' timed out")
    return ProviderError(f"{type(exc).__name__}: {exc}", provider_id=provider_id)


class Backend(Protocol):
    async def call(self, method: str, *args: Any, ctx: RequestContext | None = None) -> Any: ...

    def stream(
        self, method: str, *args: Any, ctx: RequestContext | None = None
    ) -> AsyncIterator[Any]: ...


def _public_method(target: Any, method: str) -> Callable[..., Any]:
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
    """Call `target.method(*args)` with `ctx` as the current request context, in a span
    named after `deployment` (this process's deployment when None) when `ctx` is traced
    (`colocated`: see `telemetry.start_call_span`)."""
    span = telemetry.start_call_span(ctx, deployment, method, colocated=colocated)
    try:
        with use_context(ctx), telemetry.activate(span):
            result = _public_method(target, method)(*args)
            if inspect.isawaitable(result):
                result = await result
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
            iterator = _public_method(target, method)(*args).__aiter__()
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


class Dispatcher:
    """Mixin for deployment classes: the two entry points every caller uses.

    Every call carries the `RequestContext` of the request it serves; ``call_api`` /
    ``call_api_stream`` set it and call the named public method.
    """

    async def call_api(self, ctx: RequestContext | None, method: str, *args: Any) -> Any:
        return await call_in_context(self, ctx, method, *args)

    async def call_api_stream(
        self, ctx: RequestContext | None, method: str, *args: Any
    ) -> AsyncIterator[Any]:
        async for item in stream_in_context(self, ctx, method, *args):
            yield item


class LocalBackend:
    """Calls an object in this process (`name`: the deployment it stands for, in spans).

    `colocated`: the object is a deployment's router running inside another deployment's
    replica (the inference router in the gateway): spans keep `name` in their names but
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


class HandleBackend:
    """Calls a Serve deployment (a `Dispatcher`) through its `DeploymentHandle`."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._streaming = handle.options(stream=True)

    async def call(self, method: str, *args: Any, ctx: RequestContext | None = None) -> Any:
        return await self.handle.call_api.remote(ctx, method, *args)

    def stream(
        self, method: str, *args: Any, ctx: RequestContext | None = None
    ) -> AsyncIterator[Any]:
        return self._streaming.call_api_stream.remote(ctx, method, *args)  # type: ignore[no-any-return]


def as_backend(target: Any, name: str | None = None) -> Backend:
    if isinstance(target, LocalBackend | HandleBackend):
        return target
    if type(target).__name__ == "DeploymentHandle":
        return HandleBackend(target)
    return LocalBackend(target, name)


class GuardedProvider:
    """Wraps a provider so that whatever it raises reaches clients as a `StackError`
    naming the provider (502/503/504), never as an anonymous 500."""

    def __init__(self, impl: Any, provider_id: str) -> None:
        self._impl = impl
        self.provider_id = provider_id

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._impl, name)
        if name.startswith("_") or not callable(attr):
            return attr
        if name.endswith("_stream") or inspect.isasyncgenfunction(attr):
            return self._guard_stream(attr, name)
        if inspect.iscoroutinefunction(attr):
            return self._guard_call(attr, name)
        return attr

    def _guard_call(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            measure = telemetry.provider_call(self.provider_id, name, args)
            if measure is None:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    raise provider_failure(exc, self.provider_id) from None
            try:
                with measure.activate():
                    result = await fn(*args, **kwargs)
            except Exception as exc:
                err = provider_failure(exc, self.provider_id)
                measure.finish(error=err)
                raise err from None
            measure.finish(result)
            return result

        return call

    def _guard_stream(self, fn: Callable[..., Any], name: str) -> Callable[..., AsyncIterator[Any]]:
        async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            measure = telemetry.provider_call(self.provider_id, name, args)
            error: StackError | None = None
            try:
                with telemetry.activate(measure.span if measure else None):
                    iterator = fn(*args, **kwargs).__aiter__()
                while True:
                    with telemetry.activate(measure.span if measure else None):
                        try:
                            item = await iterator.__anext__()
                        except StopAsyncIteration:
                            break
                    if measure is not None:
                        measure.chunk(item)
                    yield item
            except Exception as exc:
                error = provider_failure(exc, self.provider_id)
                raise error from None
            finally:
                if measure is not None:
                    measure.finish(error=error)

        return stream


class ApiClient:
    """Another deployment (an API, or a model server) seen as a local object.

    ``client.chat_completion(req)`` awaits the remote method; ``client.chat_completion_stream(req)``
    iterates the remote async generator. The current request context travels with each call.
    """

    def __init__(self, backend: Backend, name: str) -> None:
        self._backend = backend
        self.name = name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name.endswith("_stream"):

            def streamer(*args: Any) -> AsyncIterator[Any]:
                ctx = telemetry.outgoing(request_context_var.get())
                return self._backend.stream(name, *args, ctx=ctx)

            return streamer

        async def caller(*args: Any) -> Any:
            ctx = telemetry.outgoing(request_context_var.get())
            return await self._backend.call(name, *args, ctx=ctx)

        return caller


class ProviderProxy(ApiClient):
    """A provider that runs in a model-server deployment, seen as a local object."""

    def __init__(self, backend: Backend, provider_id: str) -> None:
        super().__init__(backend, provider_id)
        self.provider_id = provider_id
