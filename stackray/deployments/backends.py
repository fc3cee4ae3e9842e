"""One calling convention for the gateway and routers, whether the callee is a Serve
deployment (through its handle) or an object in this process (unit tests, tools).

Methods whose names end in ``_stream`` are async generators; everything else is awaited.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any, Protocol


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
