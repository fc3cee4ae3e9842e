"""The agents router: the stack's one agents provider.

Agents have no resources to route between providers, so the router is the provider
itself (`inline::meta-reference`), given the APIs it calls: inference always; safety,
tool runtime and vector IO when the stack serves them (an agent that needs one the stack
lacks is refused with a 400 naming it).
"""

from __future__ import annotations

from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.runtime.config import StackConfig
from stackray.runtime.resolver import build_providers


async def build_router(
    stack: StackConfig, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> Any:
    """The agents router (`ROUTERS[Api.agents]`)."""
    providers = stack.providers_of(Api.agents)
    if len(providers) != 1:
        raise ConfigError(
            f"the agents API takes exactly one provider, got {len(providers)} "
            "(e.g. provider_type: inline::meta-reference)"
        )
    # Guarded like every provider: what the agent loop lets escape names the provider.
    guarded = await build_providers(stack, Api.agents, deps, servers)
    return guarded[providers[0].provider_id]
