"""The composition graph of a stack: which deployments exist, what each one calls, and
how each process builds its routers over clients of the others.

`stack_graph` is the plan; `stackray.deployments.app.build_app` turns it into Serve
deployments (a handle per edge), and `build_local_stack` builds the same graph in one
process (a `LocalTransport` per edge: unit tests, tools, and the hop-count test, which
passes a recording transport). Both call `build_api` / `build_gateway_clients`, so the
objects a request passes through are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stackray.api.datatypes import Api
from stackray.providers.registry import spec_for
from stackray.runtime.calls import ApiClient, LocalTransport, Transport, local_client
from stackray.runtime.resolver import start_provider_server
from stackray.runtime.routers import (
    IN_PROCESS,
    build_router,
    router_dependencies,
    router_order,
)

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig

GATEWAY = "gateway"


def deployment_name(api: Api) -> str:
    """The Serve deployment serving `api` (``vector_io`` -> ``vector-io``)."""
    return api.value.replace("_", "-")


@dataclass(frozen=True)
class ProviderNode:
    """A provider in its own deployment (a model server, an index owner, a database)."""

    api: Api
    provider_id: str
    holds: str
    """`ProviderSpec.deployment`: model, index or database."""

    @property
    def name(self) -> str:
        return f"{self.holds}-{self.provider_id}"


@dataclass(frozen=True)
class ApiNode:
    """An API deployment (or, for `GATEWAY`, the ingress)."""

    name: str
    api: Api | None
    """None for the gateway."""
    calls: tuple[Api, ...]
    """The API deployments it calls."""
    servers: tuple[str, ...]
    """Provider ids of the provider deployments it calls: its own API's, and the
    inference model servers when it builds an inference router."""
    inference: bool
    """It builds the inference router in its own process."""


@dataclass(frozen=True)
class StackGraph:
    providers: tuple[ProviderNode, ...]
    apis: tuple[ApiNode, ...]
    """In dependency order: each after the APIs it calls."""
    gateway: ApiNode


def _provider_nodes(stack: StackConfig, api: Api) -> list[ProviderNode]:
    nodes = []
    for provider in stack.providers_of(api):
        spec = spec_for(provider, api)
        if spec.deployment is not None:
            nodes.append(ProviderNode(api, provider.provider_id, spec.deployment))
    return nodes


def stack_graph(stack: StackConfig) -> StackGraph:
    """The deployments of `stack` and their edges."""
    order = router_order(stack)
    inference_served = Api.inference in order
    inference_servers = (
        tuple(n.provider_id for n in _provider_nodes(stack, Api.inference))
        if inference_served
        else ()
    )
    providers: list[ProviderNode] = []
    for api in order:
        providers.extend(_provider_nodes(stack, api))
    apis: list[ApiNode] = []
    for api in order:
        if api in IN_PROCESS:
            continue
        deps = router_dependencies(stack, api)
        uses_inference = Api.inference in deps
        own = tuple(n.provider_id for n in _provider_nodes(stack, api))
        apis.append(
            ApiNode(
                name=deployment_name(api),
                api=api,
                calls=tuple(d for d in deps if d not in IN_PROCESS),
                servers=own + (inference_servers if uses_inference else ()),
                inference=uses_inference,
            )
        )
    gateway = ApiNode(
        name=GATEWAY,
        api=None,
        calls=tuple(n.api for n in apis if n.api is not None),
        servers=inference_servers,
        inference=inference_served,
    )
    return StackGraph(tuple(providers), tuple(apis), gateway)


async def inference_client(stack: StackConfig, servers: dict[str, ApiClient]) -> ApiClient:
    """An inference router built in this process over the model servers' clients."""
    router = await build_router(stack, Api.inference, {}, servers)
    return local_client(router, Api.inference.value, colocated=True)


async def build_api(
    stack: StackConfig,
    node: ApiNode,
    apis: dict[Api, ApiClient],
    servers: dict[str, ApiClient],
) -> Any:
    """The router of API deployment `node`, over clients of what it calls."""
    assert node.api is not None, "the gateway has no router"
    deps: dict[Api, Any] = dict(apis)
    if node.inference:
        deps[Api.inference] = await inference_client(stack, servers)
    return await build_router(stack, node.api, deps, servers)


async def build_gateway_clients(
    stack: StackConfig,
    graph: StackGraph,
    apis: dict[Api, ApiClient],
    servers: dict[str, ApiClient],
) -> dict[str, ApiClient]:
    """What the gateway calls, by API name: the API deployments, and its own inference
    router."""
    clients = {api.value: client for api, client in apis.items()}
    if graph.gateway.inference:
        clients[Api.inference.value] = await inference_client(stack, servers)
    return clients


TransportFactory = Callable[[Any, str], Transport]


async def build_local_stack(
    stack: StackConfig, transport: TransportFactory = LocalTransport
) -> dict[str, ApiClient]:
    """The whole graph in this process: what the gateway calls, by API name.

    Every edge between deployments is a `transport(target, deployment_name)`."""
    graph = stack_graph(stack)
    servers: dict[str, ApiClient] = {}
    for p in graph.providers:
        impl = await start_provider_server(stack, p.api, p.provider_id)
        servers[p.provider_id] = ApiClient(transport(impl, p.name), p.provider_id)
    apis: dict[Api, ApiClient] = {}
    for node in graph.apis:
        assert node.api is not None
        router = await build_api(
            stack,
            node,
            {a: apis[a] for a in node.calls},
            {s: servers[s] for s in node.servers},
        )
        apis[node.api] = ApiClient(transport(router, node.name), node.api.value)
    return await build_gateway_clients(
        stack, graph, apis, {s: servers[s] for s in graph.gateway.servers}
    )
