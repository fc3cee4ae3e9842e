"""`ProviderSpec`: how a provider is described to the resolver."""

from __future__ import annotations

from dataclasses import dataclass

from stackray.api.datatypes import Api


@dataclass(frozen=True)
class ProviderSpec:
    """What the resolver needs to know to run a provider."""

    api: Api
    provider_type: str
    impl: str
    """``module:Class``; constructed as ``Class(config, deps, context)``, then ``await initialize()``."""
    config_class: str
    """``module:Class`` of a pydantic model validating the provider's ``config:`` mapping."""
    api_dependencies: tuple[Api, ...] = ()
    optional_api_dependencies: tuple[Api, ...] = ()
    pip_packages: tuple[str, ...] = ()
    model_server: bool = False
    """Runs in its own Serve deployment (on a GPU when the cluster has one) instead of in-process."""
    description: str = ""
    serve_options: str | None = None
    """``module:function``: ``function(config) -> dict`` of Serve options (resources,
    placement group) for the provider's model-server deployment, under the run config's
    own `deployments` options."""
    host_check: str | None = None
    """``module:function``: ``function(provider_id, config, gpus)`` raising `ConfigError`
    when the provider cannot run (`gpus`: the Ray cluster's GPUs, None for this machine)."""
