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
    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...

    def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]: ...


class LocalBackend:
    """Calls an object in this process."""

    def __init__(self, target: Any) -> None:
        self.target = target

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.target, method)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return getattr(self.target, method)(*args, **kwargs)


class HandleBackend:
    """Calls a Serve deployment through its `DeploymentHandle`."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._streaming = handle.options(stream=True)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.handle, method).remote(*args, **kwargs)

    def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return getattr(self._streaming, method).remote(*args, **kwargs)


def as_backend(target: Any) -> Backend:
    if isinstance(target, LocalBackend | HandleBackend):
        return target
    if type(target).__name__ == "DeploymentHandle":
        return HandleBackend(target)
    return LocalBackend(target)


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
            return self._guard_stream(attr)
        if inspect.iscoroutinefunction(attr):
            return self._guard_call(attr)
        return attr

    def _guard_call(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                raise provider_failure(exc, self.provider_id) from None

        return call

    def _guard_stream(self, fn: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
        async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as exc:
                raise provider_failure(exc, self.provider_id) from None

        return stream


class ProviderProxy:
    """A provider that runs in another deployment (a model server), seen as a local object.

    ``proxy.chat_completion(req)`` awaits the remote method; ``proxy.chat_completion_stream(req)``
    iterates the remote async generator.
    """

    def __init__(self, backend: Backend, provider_id: str) -> None:
        self._backend = backend
        self.provider_id = provider_id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name.endswith("_stream"):

            def streamer(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                return self._backend.stream(name, *args, **kwargs)

            return streamer

        async def caller(*args: Any, **kwargs: Any) -> Any:
            return await self._backend.call(name, *args, **kwargs)

        return caller
