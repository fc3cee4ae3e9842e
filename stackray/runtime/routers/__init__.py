"""One router per served API: it resolves the resource a request names (model id, vector
db id, shield id ...) to a provider and calls it.

`ROUTERS` lists, per API, the function building its router and the other APIs the router
itself calls (its providers' API dependencies come from the provider registry). Each API
with a router becomes one Ray Serve deployment, except inference: its router is a library
that the gateway and every deployment calling inference build in their own process
(`IN_PROCESS`). Routing-table APIs (models, shields, vector_dbs, tool_groups ...) are
served by the deployment of the API that owns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig


@dataclass(frozen=True)
class RouterSpec:
    builder: str
    """``module:function``; ``async function(stack, deps, servers) -> router``.

    `deps` maps each API in `dependencies` (and each served one of
    `optional_dependencies`) to an `ApiClient` of that API; `servers` maps provider ids
    to `ApiClient`s of the providers' own deployments (None: every provider is
    instantiated in this process)."""
    dependencies: tuple[Api, ...] = ()
    optional_dependencies: tuple[Api, ...] = ()


ROUTERS: dict[Api, RouterSpec] = {
    Api.inference: RouterSpec("stackray.runtime.routers.inference:build_router"),
    Api.files: RouterSpec("stackray.runtime.routers.files:build_router"),
    # The safety router calls no API itself; llama-guard brings inference (its spec).
    Api.safety: RouterSpec("stackray.runtime.routers.safety:build_router"),
    Api.tool_runtime: RouterSpec(
        "stackray.runtime.routers.tool_runtime:build_router",
        # The RAG tool searches vector dbs and embeds queries.
        optional_dependencies=(Api.vector_io, Api.inference),
    ),
    Api.agents: RouterSpec(
        "stackray.runtime.routers.agents:build_router",
        dependencies=(Api.inference,),
        optional_dependencies=(Api.safety, Api.tool_runtime, Api.vector_io),
    ),
    # Vector stores read attached files through the files API when it is served.
    Api.vector_io: RouterSpec(
        "stackray.runtime.routers.vector_io:build_router",
        dependencies=(Api.inference,),
        optional_dependencies=(Api.files,),
    ),
    Api.datasetio: RouterSpec("stackray.runtime.routers.datasetio:build_router"),
    # score-batch reads datasets and saves results as datasets.
    Api.scoring: RouterSpec(
        "stackray.runtime.routers.scoring:build_router", optional_dependencies=(Api.datasetio,)
    ),
    Api.eval: RouterSpec(
        "stackray.runtime.routers.eval:build_router",
        dependencies=(Api.datasetio, Api.scoring, Api.inference),
        optional_dependencies=(Api.agents,),
    ),
    Api.telemetry: RouterSpec(
        "stackray.runtime.routers.telemetry:build_router", optional_dependencies=(Api.datasetio,)
    ),
}

IN_PROCESS: frozenset[Api] = frozenset({Api.inference})
"""APIs whose router is built in each process that calls them, not in a deployment of
its own: a chat request goes from the gateway straight to the model server."""

# Routing-table APIs and the API whose deployment serves them.
RESOURCE_OWNERS: dict[Api, Api] = {
    Api.models: Api.inference,
    Api.shields: Api.safety,
    Api.vector_dbs: Api.vector_io,
    Api.tool_groups: Api.tool_runtime,
    Api.datasets: Api.datasetio,
    Api.scoring_functions: Api.scoring,
    Api.benchmarks: Api.eval,
}


def owner(api: Api) -> Api:
    return RESOURCE_OWNERS.get(api, api)


def routed_apis(stack: StackConfig) -> list[Api]:
    """The served APIs that have a router (and so a deployment), in config order."""
    apis: list[Api] = []
    for api in stack.apis:
        main = owner(api)
        if main in ROUTERS and main not in apis:
            apis.append(main)
    return apis


def router_dependencies(stack: StackConfig, api: Api) -> list[Api]:
    """The APIs that `api`'s router or providers call, each of them served by the stack."""
    from stackray.runtime.resolver import api_dependencies

    spec = ROUTERS[api]
    served = set(routed_apis(stack))
    wanted = set(spec.dependencies) | api_dependencies(stack, api)
    missing = sorted(d.value for d in wanted if d not in served)
    if missing:
        raise ConfigError(
            f"the {api.value} API needs API(s) {', '.join(missing)}; add them to `apis`"
        )
    wanted |= {d for d in spec.optional_dependencies if d in served}
    return sorted(wanted, key=lambda a: a.value)


def router_order(stack: StackConfig) -> list[Api]:
    """The routed APIs, each after the APIs it calls."""
    order: list[Api] = []
    visiting: set[Api] = set()

    def visit(api: Api) -> None:
        if api in order:
            return
        if api in visiting:
            raise ConfigError(f"dependency cycle between APIs involving {api.value}")
        visiting.add(api)
        for dep in router_dependencies(stack, api):
            visit(dep)
        visiting.discard(api)
        order.append(api)

    for api in routed_apis(stack):
        visit(api)
    return order


async def build_router(
    stack: StackConfig,
    api: Api,
    deps: dict[Api, Any],
    servers: dict[str, Any] | None = None,
) -> Any:
    """`api`'s router over the clients of the APIs it calls (`deps`) and of the provider
    deployments (`servers`; see `RouterSpec.builder`)."""
    from stackray.providers.registry import import_object

    builder = import_object(ROUTERS[api].builder)
    return await builder(stack, deps, servers)
