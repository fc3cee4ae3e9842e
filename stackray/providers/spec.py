"""`ProviderSpec`: how a provider is described to the resolver."""

from __future__ import annotations

from dataclasses import dataclass

from stackray.api.datatypes import Api

MODEL = "model"
"""A provider deployment holding a model (generation, embeddings, a classifier)."""
INDEX = "index"
"""A provider deployment owning vector indexes (one process per index, so replicas agree)."""
DATABASE = "database"
"""A provider deployment owning an embedded database (one process per data directory)."""


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
    deployment: str | None = None
    """What the provider holds when it runs in its own Serve deployment (on a GPU when the
    cluster has one) instead of in each process that calls it: `MODEL`, `INDEX` or
    `DATABASE`; the deployment is named ``<deployment>-<provider_id>`` (``model-transformers``,
    ``index-faiss``, ``database-chromadb``). None: instantiated in the caller's process."""
    description: str = ""
    serve_options: str | None = None
    """``module:function``: ``function(config) -> dict`` of Serve options (resources,
    placement group) for the provider's own deployment, under the run config's
    own `deployments` options."""
    host_check: str | None = None
    """``module:function``: ``function(provider_id, config, gpus)`` raising `ConfigError`
    when the provider cannot run (`gpus`: the Ray cluster's GPUs, None for this machine)."""
