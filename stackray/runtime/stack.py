"""Building the routers of a stack: one function per API, shared by the Serve deployments
(which pass handles for other deployments) and `build_local_stack` (everything in one
process, for unit tests and tools)."""

from __future__ import annotations

from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.api.models import ModelType, RegisterModelRequest
from stackray.deployments.backends import GuardedProvider, ProviderProxy, as_backend
from stackray.providers.registry import spec_for
from stackray.runtime.config import StackConfig
from stackray.runtime.resolver import instantiate_provider
from stackray.runtime.resources import ResourceRegistry
from stackray.runtime.routers.inference import InferenceRouter
from stackray.runtime.storage import DocumentStore, open_kvstore


def open_registry(stack: StackConfig) -> ResourceRegistry:
    return ResourceRegistry(open_kvstore(stack.metadata_store_config()))


def open_completion_store(stack: StackConfig) -> DocumentStore:
    return DocumentStore(
        stack.inference_store_config(),
        table="chat_completions",
        indexed={"model": str, "created": int},
    )


async def build_inference_providers(
    stack: StackConfig, model_servers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Inference providers by id: proxies for those running in model-server deployments,
    in-process objects for the rest (and for all of them when `model_servers` is None)."""
    providers: dict[str, Any] = {}
    for provider in stack.providers_of(Api.inference):
        spec = spec_for(provider, Api.inference)
        if spec.model_server and model_servers is not None:
            if provider.provider_id not in model_servers:
                raise ConfigError(
                    f"no model server deployment for provider {provider.provider_id!r}"
                )
            impl: Any = ProviderProxy(
                as_backend(model_servers[provider.provider_id]), provider.provider_id
            )
        else:
            impl = await instantiate_provider(Api.inference, provider, stack)
        providers[provider.provider_id] = GuardedProvider(impl, provider.provider_id)
    return providers


async def register_config_models(router: InferenceRouter, stack: StackConfig) -> None:
    """Register the run config's models (idempotent: every replica does it at start)."""
    for model in stack.models:
        await router.register_model(
            RegisterModelRequest(
                model_id=model.model_id,
                provider_id=model.provider_id,
                provider_model_id=model.provider_model_id,
                model_type=ModelType(model.model_type),
                metadata=model.metadata or None,
            )
        )


async def build_inference_router(
    stack: StackConfig, model_servers: dict[str, Any] | None = None
) -> InferenceRouter:
    providers = await build_inference_providers(stack, model_servers)
    router = InferenceRouter(providers, open_registry(stack), open_completion_store(stack))
    await register_config_models(router, stack)
    return router


async def build_router(
    stack: StackConfig, deps: dict[Api, Any], model_servers: dict[str, Any] | None = None
) -> InferenceRouter:
    """The inference router (`ROUTERS[Api.inference]`)."""
    return await build_inference_router(stack, model_servers)


async def build_local_stack(stack: StackConfig) -> dict[str, Any]:
    """Every served API's router in this process, keyed by API name (as the gateway
    expects); each router gets the routers it depends on as in-process objects."""
    from stackray.runtime.routers import build_router as build_api_router
    from stackray.runtime.routers import router_dependencies, router_order

    routers: dict[Api, Any] = {}
    for api in router_order(stack):
        deps = {dep: routers[dep] for dep in router_dependencies(stack, api)}
        routers[api] = await build_api_router(stack, api, deps)
    return {api.value: router for api, router in routers.items()}
