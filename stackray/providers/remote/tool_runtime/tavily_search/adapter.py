"""`remote::tavily-search`: the `web_search` tool over Tavily's ``POST /search``."""

from __future__ import annotations

from typing import Any

from stackray.api.tools import ToolInvocationResult
from stackray.providers.remote.tool_runtime.web import WebToolAdapter


class TavilySearchToolRuntime(WebToolAdapter):
    tool_name = "web_search"
    tool_description = "Search the web for current information with Tavily"
    provider_data_key = "tavily_search_api_key"
    auth_header = "Authorization"
    auth_prefix = "Bearer "

    async def run(self, query: str) -> ToolInvocationResult:
        body = {
            "query": query,
            "max_results": self.config.max_results,
            "search_depth": self.config.search_depth,
        }
        data = await self.client.request_json("POST", "search", body)
        results: list[dict[str, Any]] = []
        for item in (data.get("results") or [])[: self.config.max_results]:
            result = {k: item.get(k) for k in ("title", "url", "content", "score")}
            results.append({k: v for k, v in result.items() if v is not None})
        out: dict[str, Any] = {"query": query, "top_k": results}
        if data.get("answer"):
            out["answer"] = data["answer"]
        return self.json_result(out)
