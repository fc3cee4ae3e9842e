"""Providers: instantiated, or reached in their own deployment, and guarded.

`build_providers` is the one provider builder every router uses: each configured provider
of an API is either instantiated here (given clients for the APIs it calls) or, when it
runs in its own deployment, reached through the client the caller passes in `servers`;
either way it is wrapped in a `GuardedProvider`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError, StackError
from stackray.providers.registry import ProviderSpec, import_object, spec_for
from stackray.runtime import telemetry
from stackray.runtime.errors import to_stack_error
from stackray.runtime.provider_config import parse_provider_config

if TYPE_CHECKING:
    from stackray.runtime.config import Provider, StackConfig


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may know about the stack it runs in."""

    provider_id: str
    data_dir: Path
    """The provider's own directory for files it keeps (indexes, caches)."""
    stack: StackConfig


def provider_context(stack: StackConfig, provider_id: str) -> ProviderContext:
    return ProviderContext(
        provider_id=provider_id, data_dir=stack.data_dir / "providers" / provider_id, stack=stack
    )


async def instantiate_provider(
    api: Api, provider: Provider, stack: StackConfig, deps: dict[Api, Any] | None = None
) -> Any:
    """Build and initialize one provider."""
    spec = spec_for(provider, api)
    return await instantiate_spec(spec, provider, stack, deps or {})


async def instantiate_spec(
    spec: ProviderSpec, provider: Provider, stack: StackConfig, deps: dict[Api, Any]
) -> Any:
    missing = [d.value for d in spec.api_dependencies if d not in deps]
    if missing:
        raise ConfigError(f"provider {provider.provider_id!r} needs API(s) {', '.join(missing)}")
    config = parse_provider_config(spec, provider.config)
    impl_cls = import_object(spec.impl)
    wanted = {
        d: deps[d] for d in (*spec.api_dependencies, *spec.optional_api_dependencies) if d in deps
    }
    impl = impl_cls(config, wanted, provider_context(stack, provider.provider_id))
    init = getattr(impl, "initialize", None)
    if init is not None:
        await init()
    return impl


async def build_providers(
    stack: StackConfig,
    api: Api,
    deps: dict[Api, Any] | None = None,
    servers: dict[str, Any] | None = None,
) -> dict[str, GuardedProvider]:
    """The providers of `api` by provider id, each guarded.

    A provider that runs in its own deployment (`ProviderSpec.deployment`) is the client
    in `servers` under its provider id; with `servers` None (everything in one process)
    every provider is instantiated here. `deps`: clients of the APIs providers call."""
    providers: dict[str, GuardedProvider] = {}
    for provider in stack.providers_of(api):
        spec = spec_for(provider, api)
        impl: Any
        if spec.deployment is not None and servers is not None:
            if provider.provider_id not in servers:
                raise ConfigError(f"no deployment for provider {provider.provider_id!r}")
            impl = servers[provider.provider_id]
        else:
            impl = await instantiate_spec(spec, provider, stack, deps or {})
        providers[provider.provider_id] = GuardedProvider(impl, provider.provider_id)
    return providers


async def start_provider_server(stack: StackConfig, api: Api, provider_id: str) -> Any:
    """The provider a provider deployment holds, instantiated and with the run config's
    models for it loaded (`preload`), so the first request does not pay for loading."""
    matches = [p for p in stack.providers_of(api) if p.provider_id == provider_id]
    if not matches:
        raise ConfigError(f"no {api.value} provider {provider_id!r} in the config")
    impl = await instantiate_provider(api, matches[0], stack)
    preload = getattr(impl, "preload", None)
    if preload is not None:
        await preload([m for m in stack.models if m.provider_id == provider_id])
    return impl


class GuardedProvider:
    """Wraps a provider so that whatever it raises reaches clients as a `StackError`
    naming the provider (502/503/504), never as an anonymous 500; and traces and
    measures each call."""

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
                    raise to_stack_error(exc, self.provider_id) from None
            try:
                with measure.activate():
                    result = await fn(*args, **kwargs)
            except Exception as exc:
                err = to_stack_error(exc, self.provider_id)
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
                error = to_stack_error(exc, self.provider_id)
                raise error from None
            finally:
                if measure is not None:
                    measure.finish(error=error)

        return stream


def api_dependencies(stack: StackConfig, api: Api) -> set[Api]:
    """The APIs that the providers of `api` call."""
    needed: set[Api] = set()
    for provider in stack.providers_of(api):
        spec = spec_for(provider, api)
        needed.update(spec.api_dependencies)
        needed.update(d for d in spec.optional_api_dependencies if d in stack.apis)
    return needed
