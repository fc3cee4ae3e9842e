"""tool_runtime providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

_REMOTE = "stackray.providers.remote.tool_runtime"
_INLINE = "stackray.providers.inline.tool_runtime"

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.tool_runtime,
        provider_type="inline::rag-runtime",
        impl=f"{_INLINE}.rag.impl:RagToolRuntimeImpl",
        config_class=f"{_INLINE}.rag.config:RagToolRuntimeConfig",
        api_dependencies=(Api.vector_io,),
        optional_api_dependencies=(Api.inference,),
        description="The RAG tool (builtin::rag, knowledge_search): documents chunked by tokens "
        "into vector dbs, and retrieval of context for a query.",
    ),
    ProviderSpec(
        api=Api.tool_runtime,
        provider_type="remote::model-context-protocol",
        impl=f"{_REMOTE}.model_context_protocol.adapter:MCPToolRuntimeAdapter",
        config_class=f"{_REMOTE}.model_context_protocol.config:MCPProviderConfig",
        pip_packages=("mcp",),
        description="Tool groups served by MCP servers (SSE or streamable HTTP), with per-request "
        "headers from the provider data's mcp_headers.",
    ),
    *(
        ProviderSpec(
            api=Api.tool_runtime,
            provider_type=f"remote::{name.replace('_', '-')}",
            impl=f"{_REMOTE}.{name}.adapter:{adapter}",
            config_class=f"{_REMOTE}.{name}.config:{config}",
            description=description,
        )
        for name, adapter, config, description in (
            (
                "tavily_search",
                "TavilySearchToolRuntime",
                "TavilySearchToolConfig",
                "web_search with Tavily (key: tavily_search_api_key).",
            ),
            (
                "brave_search",
                "BraveSearchToolRuntime",
                "BraveSearchToolConfig",
                "web_search with Brave Search (key: brave_search_api_key).",
            ),
            (
                "bing_search",
                "BingSearchToolRuntime",
                "BingSearchToolConfig",
                "web_search with Bing (key: bing_search_api_key).",
            ),
            (
                "wolfram_alpha",
                "WolframAlphaToolRuntime",
                "WolframAlphaToolConfig",
                "wolfram_alpha with Wolfram|Alpha (key: wolfram_alpha_api_key).",
            ),
        )
    ),
)
