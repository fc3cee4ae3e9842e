"""Provider configs: validated against their spec's config class, checked against the
host, and the Serve options a provider's own deployment asks for.

`validate_providers` runs when a run config is parsed (`parse_config`), so a config whose
providers cannot start is refused at `stackray check` / start, naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.providers.registry import import_object, spec_for
from stackray.providers.spec import ProviderSpec
from stackray.runtime.config_errors import format_validation_error
from stackray.runtime.routers import IN_PROCESS, ROUTERS, owner, routed_apis

GATEWAY_APIS = frozenset({Api.inspect, Api.providers})
"""APIs the gateway answers itself (routes, providers, health)."""

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig


def parse_provider_config(spec: ProviderSpec, raw: dict[str, Any]) -> BaseModel:
    config_cls = import_object(spec.config_class)
    return config_cls.model_validate(raw)


def validate_providers(config: StackConfig, source: str) -> None:
    """Check every provider of the served APIs: type known, ids unique, config valid, deps served."""
    # provider_id is unique within an API (Llama Stack configs reuse `meta-reference`
    # across APIs); providers in their own deployment are also unique across APIs: their
    # deployment options are keyed by provider_id.
    seen: dict[tuple[Api, str], str] = {}
    own_deployments: dict[str, str] = {}
    served = set(config.apis)
    servable = sorted(a.value for a in Api if a in GATEWAY_APIS or owner(a) in ROUTERS)
    for i, api in enumerate(config.apis):
        if api not in GATEWAY_APIS and owner(api) not in ROUTERS:
            raise ConfigError(
                f"{source}: apis[{i}]: {api.value} is not served by this version "
                f"(served: {', '.join(servable)})"
            )
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
                hint = external_spec_hint(config, api, provider.provider_type)
                raise ConfigError(f"{source}: {where}: {e}{hint}") from None
            if spec.deployment is not None:
                if provider.provider_id in own_deployments:
                    raise ConfigError(
                        f"{source}: {where}.provider_id: {provider.provider_id!r} runs in its own "
                        f"deployment, and {own_deployments[provider.provider_id]} already has that id"
                    )
                own_deployments[provider.provider_id] = where
            try:
                parse_provider_config(spec, provider.config)
            except ValidationError as e:
                raise ConfigError(format_validation_error(e, source, f"{where}.config")) from None
            missing = [d.value for d in spec.api_dependencies if d not in served]
            if missing:
                raise ConfigError(
                    f"{source}: {where}: {provider.provider_type} needs API(s) {', '.join(missing)}; add them to `apis`"
                )
    validate_deployment_names(config, source, set(own_deployments))
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


def external_spec_hint(config: StackConfig, api: Api, provider_type: str) -> str:
    """What to say when an unknown provider type has a Llama Stack external provider spec
    (``<external_providers_dir>/<remote|inline>/<api>/<name>.yaml``)."""
    if not config.external_providers_dir or "::" not in provider_type:
        return ""
    kind, _, name = provider_type.partition("::")
    base = Path(config.external_providers_dir).expanduser() / kind / api.value
    found = next(
        (base / f"{name}{ext}" for ext in (".yaml", ".yml") if (base / f"{name}{ext}").is_file()),
        None,
    )
    if found is None:
        return ""
    return (
        f"; {found} is a Llama Stack external provider spec, which is not loaded here (its "
        "module implements Llama Stack's own Python interfaces): give the provider "
        "`module:` naming a package whose get_provider_spec() returns a stackray ProviderSpec"
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
    """The Serve options a provider's own deployment asks for (`ProviderSpec.serve_options`)."""
    if spec.serve_options is None:
        return {}
    options: dict[str, Any] = import_object(spec.serve_options)(parse_provider_config(spec, raw))
    return options


def validate_deployment_names(config: StackConfig, source: str, own: set[str]) -> None:
    """Every key of `deployments:` names a deployment of this stack: 'gateway', a served
    API with a deployment of its own, or the provider_id of a provider in its own
    deployment (`own`). Options for anything else would be silently ignored."""
    if not config.deployments:
        return
    apis = {a.value for a in routed_apis(config) if a not in IN_PROCESS}
    known = {"gateway"} | apis | own
    for name in config.deployments:
        if name not in known:
            raise ConfigError(
                f"{source}: deployments.{name}: no such deployment in this stack "
                f"(deployments: {', '.join(sorted(known))})"
            )
