"""agents providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

_INLINE = "stackray.providers.inline"

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.agents,
        provider_type="inline::meta-reference",
        impl=f"{_INLINE}.agents.meta_reference.impl:MetaReferenceAgents",
        config_class=f"{_INLINE}.agents.meta_reference.config:MetaReferenceAgentsConfig",
        api_dependencies=(Api.inference,),
        optional_api_dependencies=(Api.safety, Api.tool_runtime, Api.vector_io),
        description="Agents on the stack's own inference, safety, tool runtime and vector IO "
        "APIs; agents, sessions and turns in SQLite or PostgreSQL.",
    ),
)
