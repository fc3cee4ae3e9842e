"""Instantiate providers in dependency order.

Within Ray Serve each API deployment instantiates only its own providers and receives its
API dependencies as deployment handles; `build_local_stack` instantiates a whole stack in
one process (unit tests, tools) with the routers themselves as dependencies.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.providers.registry import ProviderSpec, import_object, parse_provider_config, spec_for

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
        result = init()
        if inspect.isawaitable(result):
            await result
    return impl


def api_dependencies(stack: StackConfig, api: Api) -> set[Api]:
    """The APIs that the providers of `api` call."""
    needed: set[Api] = set()
    for provider in stack.providers_of(api):
        spec = spec_for(provider, api)
        needed.update(spec.api_dependencies)
        needed.update(d for d in spec.optional_api_dependencies if d in stack.apis)
    return needed
