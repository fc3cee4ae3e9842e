"""Every provider as data, and its lookup (`spec_for`).

A provider is named by `provider_type` (``inline::transformers``, ``remote::vllm``) and
described by a `ProviderSpec`: the class implementing it, its config class, the other APIs
it needs, and the pip packages it wants. Nothing here imports a provider's code; the
resolver imports `impl` and `config_class` only when the provider is instantiated.

External providers live in other installed packages: a run config entry with
``module: my_pkg.provider`` makes the resolver import ``my_pkg.provider`` and call its
``get_provider_spec()`` (returning a `ProviderSpec`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.providers.spec import ProviderSpec

if TYPE_CHECKING:
    from stackray.runtime.config import Provider


# One module per API under `stackray.providers.specs`, each defining `SPECS`.
_SPEC_MODULES = (
    "inference",
    "vector_io",
    "files",
    "safety",
    "tool_runtime",
    "agents",
    "telemetry",
    "datasetio",
    "scoring",
    "eval",
)


def _load_builtin() -> tuple[ProviderSpec, ...]:
    specs: list[ProviderSpec] = []
    for name in _SPEC_MODULES:
        module = importlib.import_module(f"stackray.providers.specs.{name}")
        specs.extend(module.SPECS)
    return tuple(specs)


BUILTIN_PROVIDERS: tuple[ProviderSpec, ...] = _load_builtin()


def builtin_spec(provider_type: str, api: Api | None = None) -> ProviderSpec | None:
    """The builtin spec of `provider_type` (for `api`: a type such as
    ``inline::meta-reference`` names a provider of several APIs)."""
    found = None
    for spec in BUILTIN_PROVIDERS:
        if spec.provider_type == provider_type:
            if api is None or spec.api == api:
                return spec
            found = found or spec
    return found


def import_object(path: str) -> Any:
    """Import ``module:attr``."""
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def spec_for(provider: Provider, api: Api) -> ProviderSpec:
    """The spec of a configured provider: builtin by type, or external by module."""
    if provider.module:
        try:
            module = importlib.import_module(provider.module)
        except ImportError as e:
            raise ConfigError(
                f"cannot import external provider module {provider.module!r}: {e}"
            ) from None
        get_spec = getattr(module, "get_provider_spec", None)
        if get_spec is None:
            raise ConfigError(
                f"external provider module {provider.module!r} has no get_provider_spec()"
            )
        spec = get_spec()
        if not isinstance(spec, ProviderSpec):
            raise ConfigError(f"{provider.module}.get_provider_spec() must return a ProviderSpec")
        if spec.provider_type != provider.provider_type:
            raise ConfigError(
                f"external provider module {provider.module!r} provides {spec.provider_type!r}, "
                f"not {provider.provider_type!r}"
            )
    else:
        found = builtin_spec(provider.provider_type, api)
        if found is None:
            known = ", ".join(s.provider_type for s in BUILTIN_PROVIDERS if s.api == api)
            raise ConfigError(
                f"unknown provider_type {provider.provider_type!r} for API {api.value} "
                f"(known: {known or 'none'}; an external provider also needs `module:`)"
            )
        spec = found
    if spec.api != api:
        raise ConfigError(
            f"provider_type {provider.provider_type!r} implements {spec.api.value}, not {api.value}"
        )
    return spec
