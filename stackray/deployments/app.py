"""`build_app`: the Serve application for a run config.

Usable three ways with the same result:
- ``stackray run local`` (calls `build_app` and `serve.run`),
- ``serve run stackray.deployments.app:build_app config=local``,
- a Serve config file with ``import_path: stackray.deployments.app:build_app`` and
  ``args: {config: ...}`` for ``serve deploy`` / KubeRay.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.deployments.handles import Dispatcher
from stackray.providers.registry import spec_for
from stackray.runtime.config import DeploymentOptions, StackConfig, parse_config
from stackray.runtime.graph import GATEWAY, deployment_name, stack_graph
from stackray.runtime.provider_config import check_hosts, serve_options

logger = logging.getLogger(__name__)


class Gateway(Dispatcher):
    """The HTTP ingress replica: builds the FastAPI app over clients of the API
    deployments and its own inference router (over the inference model servers), so a
    chat request goes from here straight to the model server.

    Handle callers outside the stack's deployments (the ingestion job) reach that
    inference router through the `Dispatcher` entry points."""

    async def __init__(  # type: ignore[misc]
        self,
        config: dict[str, Any],
        apis: dict[str, Any],
        servers: dict[str, Any],
    ) -> None:
        from stackray.deployments.handles import handle_client
        from stackray.deployments.logs import quiet_client_errors
        from stackray.runtime import telemetry
        from stackray.runtime.graph import build_gateway_clients, stack_graph

        self._stack = parse_config(config, "<deployed config>")
        self._stack.apply_log_levels()
        telemetry.configure(self._stack, GATEWAY)
        quiet_client_errors()  # after telemetry: its log handler is set up then
        self._clients = await build_gateway_clients(
            self._stack,
            stack_graph(self._stack),
            {Api(name): handle_client(h, name) for name, h in apis.items()},
            {pid: handle_client(h, pid) for pid, h in servers.items()},
        )

    def _target(self) -> Any:
        from stackray.api.errors import NotFoundError

        client = self._clients.get(Api.inference.value)
        if client is None:
            raise NotFoundError("this stack does not serve the inference API")
        return client

    def __serve_build_asgi_app__(self) -> Any:
        from stackray.deployments.gateway import create_gateway_app

        return create_gateway_app(self._stack, self._clients)


def cluster_has_gpus() -> bool:
    try:
        import ray

        return ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0
    except Exception:
        return False


def _deployment(cls: type, name: str, options: DeploymentOptions, defaults: dict[str, Any]) -> Any:
    from ray import serve

    opts = dict(defaults)
    configured = options.to_serve_options()
    actor_defaults = dict(opts.pop("ray_actor_options", {}))
    actor_defaults.update(configured.pop("ray_actor_options", {}))
    opts.update(configured)
    if "autoscaling_config" in opts:
        opts.pop("num_replicas", None)
    opts["ray_actor_options"] = actor_defaults
    return serve.deployment(name=name)(cls).options(**opts)


def cluster_gpu_count() -> float | None:
    """The Ray cluster's GPUs, or None when this process is not connected to Ray."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        return float(ray.cluster_resources().get("GPU", 0))
    except Exception:
        return None


def provider_defaults(gpus: bool, provider_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Serve options of a provider deployment: one CPU (and a GPU when the cluster has one),
    updated with what the provider asks for (`ProviderSpec.serve_options`: its GPUs, a
    placement group for tensor parallelism ...)."""
    actor: dict[str, Any] = {"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": 1}
    defaults: dict[str, Any] = {"max_ongoing_requests": 64}
    for key, value in (provider_options or {}).items():
        if key == "ray_actor_options":
            actor.update(value)
        else:
            defaults[key] = value
    defaults["ray_actor_options"] = actor
    return defaults


# Routers and the gateway are light async code: they ask for no CPU so they always fit.
ROUTER_DEFAULTS: dict[str, Any] = {
    "ray_actor_options": {"num_cpus": 0},
    "max_ongoing_requests": 256,
}


def build_app_from_config(
    stack: StackConfig, raw: dict[str, Any], gpus: bool | None = None, *, host_checks: bool = True
) -> Any:
    """The Serve graph of `stack_graph(stack)`: provider deployments, then one deployment
    per API (bound to the deployments it calls), then the gateway bound to them all.

    `host_checks` first checks that the providers can run on the Ray cluster (or this
    machine, outside Ray): a provider needing GPUs there are not is a `ConfigError`."""
    from ray import serve

    from stackray.deployments.api import ApiDeployment
    from stackray.deployments.provider import ProviderDeployment
    from stackray.runtime.auth import harden_raw_config

    # Replicas get the config as Serve arguments: api keys travel as their hashes only.
    raw = harden_raw_config(raw, stack.server.auth)
    gpus = cluster_has_gpus() if gpus is None else gpus
    if host_checks:
        check_hosts(stack, cluster_gpu_count())
    graph = stack_graph(stack)
    servers: dict[str, Any] = {}
    for node in graph.providers:
        provider = next(
            p for p in stack.providers_of(node.api) if p.provider_id == node.provider_id
        )
        spec = spec_for(provider, node.api)
        dep = _deployment(
            ProviderDeployment,
            node.name,
            stack.deployment_options(node.provider_id),
            provider_defaults(gpus, serve_options(spec, provider.config)),
        )
        servers[node.provider_id] = dep.bind(raw, node.api.value, node.provider_id, node.name)
    bound: dict[Api, Any] = {}
    for api_node in graph.apis:
        assert api_node.api is not None
        deployment = _deployment(
            ApiDeployment,
            api_node.name,
            stack.deployment_options(api_node.api.value),
            ROUTER_DEFAULTS,
        )
        bound[api_node.api] = deployment.bind(
            raw,
            api_node.api.value,
            {a.value: bound[a] for a in api_node.calls},
            {pid: servers[pid] for pid in api_node.servers},
        )
    gateway_cls = serve.ingress()(Gateway)
    gateway = _deployment(gateway_cls, GATEWAY, stack.deployment_options(GATEWAY), ROUTER_DEFAULTS)
    return gateway.bind(
        raw,
        {a.value: b for a, b in bound.items()},
        {pid: servers[pid] for pid in graph.gateway.servers},
    )


def resolved_config(args: dict[str, Any]) -> tuple[StackConfig, dict[str, Any]]:
    """Load the config named by `args` and return it with its env-interpolated mapping.

    Replicas get the interpolated mapping, so they need none of the driver's environment.
    """
    from stackray.runtime.envsubst import interpolate

    if "stack" in args:
        data = args["stack"]
        source = "<args.stack>"
    else:
        from stackray.runtime.config import read_config_file, resolve_config_path

        path = resolve_config_path(
            str(args.get("config", os.environ.get("STACKRAY_CONFIG", "local")))
        )
        data = read_config_file(path)
        source = str(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        raw = interpolate(data)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    if args.get("port") is not None:
        raw.setdefault("server", {})["port"] = int(args["port"])
    if args.get("data_dir"):
        raw.setdefault("storage", {})["data_dir"] = str(args["data_dir"])
    stack = parse_config(raw, source)
    stack.apply_log_levels()
    for notice in stack.no_effect_notices():
        logger.warning("%s: %s", source, notice)
    return stack, raw


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Serve application builder: ``args`` is ``{config: <file or distribution>}`` or
    ``{stack: <config mapping>}``, optionally with ``data_dir``."""
    stack, raw = resolved_config(args or {})
    return build_app_from_config(stack, raw)


__all__ = ["build_app", "build_app_from_config", "deployment_name", "Gateway"]
