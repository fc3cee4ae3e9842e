"""`build_app`: the Serve application for a run config.

Usable three ways with the same result:
- ``stackray run local`` (calls `build_app` and `serve.run`),
- ``serve run stackray.deployments.app:build_app config=local``,
- a Serve config file with ``import_path: stackray.deployments.app:build_app`` and
  ``args: {config: ...}`` for ``serve deploy`` / KubeRay.
"""

from __future__ import annotations

import os
from typing import Any

from stackray.api.datatypes import Api
from stackray.providers.registry import check_hosts, serve_options, spec_for
from stackray.runtime.config import DeploymentOptions, StackConfig, parse_config

GATEWAY = "gateway"


class Gateway:
    """The HTTP ingress replica: builds the FastAPI app around handles to the API deployments.

    With ``deployments.inference.in_gateway`` it also builds its own inference router over
    `model_servers` (the inference model servers' handles) and serves the inference routes
    with it, in this process; the inference deployment stays, for the APIs that call it,
    and `/v1/health` still asks it too."""

    async def __init__(  # type: ignore[misc]
        self,
        config: dict[str, Any],
        backends: dict[str, Any],
        model_servers: dict[str, Any] | None = None,
    ) -> None:
        self._stack = parse_config(config, "<deployed config>")
        self._backends = dict(backends)
        self._health_extra: dict[str, Any] = {}
        from stackray.runtime import telemetry

        telemetry.configure(self._stack, GATEWAY)
        if model_servers is not None and Api.inference.value in self._backends:
            from stackray.deployments.backends import LocalBackend
            from stackray.runtime.stack import build_inference_router

            name = Api.inference.value
            router = await build_inference_router(self._stack, model_servers)
            self._health_extra[name] = self._backends[name]
            self._backends[name] = LocalBackend(router, name, colocated=True)

    def __serve_build_asgi_app__(self) -> Any:
        from stackray.deployments.gateway import create_gateway_app

        return create_gateway_app(self._stack, self._backends, health_extra=self._health_extra)


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


def model_server_defaults(
    gpus: bool, provider_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Serve options of a model server: one CPU (and a GPU when the cluster has one),
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


def deployment_name(api: Api) -> str:
    """The Serve deployment serving `api` (``vector_io`` -> ``vector-io``)."""
    return api.value.replace("_", "-")


def build_app_from_config(
    stack: StackConfig, raw: dict[str, Any], gpus: bool | None = None, *, host_checks: bool = True
) -> Any:
    """The Serve graph: model servers, then one deployment per routed API (each bound to
    the deployments it calls), then the gateway bound to them all.

    `host_checks` first checks that the providers can run on the Ray cluster (or this
    machine, outside Ray): a provider needing GPUs there are not is a `ConfigError`."""
    from ray import serve

    from stackray.deployments.api import ApiDeployment
    from stackray.deployments.model_server import ModelServerDeployment
    from stackray.runtime.routers import router_dependencies, router_order

    gpus = cluster_has_gpus() if gpus is None else gpus
    if host_checks:
        check_hosts(stack, cluster_gpu_count())
    bound: dict[Api, Any] = {}
    inference_servers: dict[str, Any] = {}
    for api in router_order(stack):
        model_servers = {}
        for provider in stack.providers_of(api):
            spec = spec_for(provider, api)
            if spec.model_server:
                dep = _deployment(
                    ModelServerDeployment,
                    f"model-{provider.provider_id}",
                    stack.deployment_options(provider.provider_id),
                    model_server_defaults(gpus, serve_options(spec, provider.config)),
                )
                model_servers[provider.provider_id] = dep.bind(raw, api.value, provider.provider_id)
        deps = {dep.value: bound[dep] for dep in router_dependencies(stack, api)}
        deployment = _deployment(
            ApiDeployment,
            deployment_name(api),
            stack.deployment_options(api.value),
            ROUTER_DEFAULTS,
        )
        bound[api] = deployment.bind(raw, api.value, deps, model_servers)
        if api is Api.inference:
            inference_servers = model_servers
    gateway_cls = serve.ingress()(Gateway)
    gateway = _deployment(gateway_cls, GATEWAY, stack.deployment_options(GATEWAY), ROUTER_DEFAULTS)
    backends = {api.value: b for api, b in bound.items()}
    if stack.inference_in_gateway:
        # The gateway's own inference router calls the same model servers.
        return gateway.bind(raw, backends, inference_servers)
    return gateway.bind(raw, backends)


def resolved_config(args: dict[str, Any]) -> tuple[StackConfig, dict[str, Any]]:
    """Load the config named by `args` and return it with its env-interpolated mapping.

    Replicas get the interpolated mapping, so they need none of the driver's environment.
    """
    from stackray.runtime.envsubst import interpolate

    if "stack" in args:
        raw = interpolate(args["stack"])
        source = "<args.stack>"
    else:
        import yaml

        from stackray.runtime.config import resolve_config_path

        path = resolve_config_path(
            str(args.get("config", os.environ.get("STACKRAY_CONFIG", "local")))
        )
        raw = interpolate(yaml.safe_load(path.read_text()))
        source = str(path)
    if args.get("port") is not None:
        raw.setdefault("server", {})["port"] = int(args["port"])
    if args.get("data_dir"):
        raw.setdefault("storage", {})["data_dir"] = str(args["data_dir"])
    stack = parse_config(raw, source)
    return stack, raw


def build_app(args: dict[str, Any] | None = None) -> Any:
    """Serve application builder: ``args`` is ``{config: <file or distribution>}`` or
    ``{stack: <config mapping>}``, optionally with ``data_dir``."""
    stack, raw = resolved_config(args or {})
    return build_app_from_config(stack, raw)


__all__ = ["build_app", "build_app_from_config", "Gateway"]
