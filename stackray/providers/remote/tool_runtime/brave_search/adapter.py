"""`remote::brave-search`: the `web_search` tool over Brave's ``GET /res/v1/web/search``."""

from __future__ import annotations

from typing import Any

from stackray.api.tools import ToolInvocationResult
from stackray.providers.remote.tool_runtime.web import WebToolAdapter


class BraveSearchToolRuntime(WebToolAdapter):
    tool_name = "web_search"
    tool_description = "Search the web for current information with Brave Search"
    provider_data_key = "brave_search_api_key"
    auth_header = "X-Subscription-Token"

    async def run(self, query: str) -> ToolInvocationResult:
        data = await self.get("res/v1/web/search", {"q": query, "count": self.config.max_results})
        results: list[dict[str, Any]] = []
        for item in ((data.get("web") or {}).get("results") or [])[: self.config.max_results]:
            result = {k: item.get(k) for k in ("title", "url", "description", "age")}
            if item.get("extra_snippets"):
                result["extra_snippets"] = item["extra_snippets"]
            results.append({k: v for k, v in result.items() if v is not None})
        return self.json_result({"query": query, "top_k": results})
