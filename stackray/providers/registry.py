"""Every provider as data.

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

from pydantic import BaseModel, ValidationError

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.providers.spec import ProviderSpec

if TYPE_CHECKING:
    from stackray.runtime.config import Provider, StackConfig


# One module per API under `stackray.providers.specs`, each defining `SPECS`.
_SPEC_MODULES = (
    "inference",
    "vector_io",
    "files",
    "safety",
    "tool_runtime",
    "agents",
    "telemetry",
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


def parse_provider_config(spec: ProviderSpec, raw: dict[str, Any]) -> BaseModel:
    config_cls = import_object(spec.config_class)
    return config_cls.model_validate(raw)


def validate_providers(config: StackConfig, source: str) -> None:
    """Check every provider of the served APIs: type known, ids unique, config valid, deps served."""
    from stackray.runtime.config import format_validation_error

    # provider_id is unique within an API (Llama Stack configs reuse `meta-reference`
    # across APIs); model servers are also unique across APIs: each is a deployment
    # named after its provider_id.
    seen: dict[tuple[Api, str], str] = {}
    model_servers: dict[str, str] = {}
    served = set(config.apis)
    for api, providers in config.providers.items():
        if api not in served:
            continue
        for i, provider in enumerate(providers):
            where = f"providers.{api.value}[{i}]"
            if (api, provider.provider_id) in seen:
                raise ConfigError(
                    f"{source}: {where}.provider_id: {provider.provider_id!r} is already used by {seen[api, provider.provider_id]}"
                )
            seen[api, provider.provider_id] = where
            try:
                spec = spec_for(provider, api)
            except ConfigError as e:
                raise ConfigError(f"{source}: {where}: {e}") from None
            if spec.model_server:
                if provider.provider_id in model_servers:
                    raise ConfigError(
                        f"{source}: {where}.provider_id: {provider.provider_id!r} names a model "
                        f"server, and {model_servers[provider.provider_id]} already has that id"
                    )
                model_servers[provider.provider_id] = where
            try:
                parse_provider_config(spec, provider.config)
            except ValidationError as e:
                raise ConfigError(format_validation_error(e, source, f"{where}.config")) from None
            missing = [d.value for d in spec.api_dependencies if d not in served]
            if missing:
                raise ConfigError(
                    f"{source}: {where}: {provider.provider_type} needs API(s) {', '.join(missing)}; add them to `apis`"
                )
    provider_ids = {p.provider_id for api in served for p in config.providers_of(api)}
    for i, group in enumerate(config.tool_groups):
        if group.provider_id not in provider_ids:
            raise ConfigError(
                f"{source}: tool_groups[{i}].provider_id: no provider {group.provider_id!r} "
                f"(providers: {', '.join(sorted(provider_ids)) or 'none'})"
            )
    for i, model in enumerate(config.models):
        if model.provider_id is not None and model.provider_id not in provider_ids:
            raise ConfigError(
                f"{source}: models[{i}].provider_id: no provider {model.provider_id!r} "
                f"(providers: {', '.join(sorted(provider_ids)) or 'none'})"
            )


def check_hosts(config: StackConfig, gpus: float | None = None) -> None:
    """Run the host checks of the served providers (`ProviderSpec.host_check`): raise
    `ConfigError` for one that cannot run on this machine (`gpus` None) or cluster."""
    for api in config.apis:
        for provider in config.providers_of(api):
            spec = spec_for(provider, api)
            if spec.host_check is None:
                continue
            check = import_object(spec.host_check)
            check(provider.provider_id, parse_provider_config(spec, provider.config), gpus)


def serve_options(spec: ProviderSpec, raw: dict[str, Any]) -> dict[str, Any]:
    """The Serve options a model-server provider asks for (`ProviderSpec.serve_options`)."""
    if spec.serve_options is None:
        return {}
    options: dict[str, Any] = import_object(spec.serve_options)(parse_provider_config(spec, raw))
    return options
