"""Settings of `remote::tavily-search`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stackray.providers.remote.tool_runtime.web import SearchConfig


class TavilySearchToolConfig(SearchConfig):
    """Tavily's search API."""

    base_url: str = Field(default="https://api.tavily.com", description="Tavily's API URL.")
    search_depth: Literal["basic", "advanced"] = Field(
        default="basic", description="Tavily's search depth (advanced costs more credits)."
    )
