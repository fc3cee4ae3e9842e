"""`remote::bing-search`: the `web_search` tool over Bing's ``GET /v7.0/search``."""

from __future__ import annotations

from typing import Any

from stackray.api.tools import ToolInvocationResult
from stackray.providers.remote.tool_runtime.web import WebToolAdapter


class BingSearchToolRuntime(WebToolAdapter):
    tool_name = "web_search"
    tool_description = "Search the web for current information with Bing"
    provider_data_key = "bing_search_api_key"
    auth_header = "Ocp-Apim-Subscription-Key"

    async def run(self, query: str) -> ToolInvocationResult:
        params: dict[str, Any] = {"q": query, "count": self.config.max_results}
        if self.config.market:
            params["mkt"] = self.config.market
        data = await self.get("v7.0/search", params)
        results: list[dict[str, Any]] = []
        for item in ((data.get("webPages") or {}).get("value") or [])[: self.config.max_results]:
            result = {
                "title": item.get("name"),
                "url": item.get("url"),
                "snippet": item.get("snippet"),
            }
            results.append({k: v for k, v in result.items() if v is not None})
        return self.json_result({"query": query, "top_k": results})
