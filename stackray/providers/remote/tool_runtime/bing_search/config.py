"""Settings of `remote::bing-search`."""

from __future__ import annotations

from pydantic import Field

from stackray.providers.remote.tool_runtime.web import SearchConfig


class BingSearchToolConfig(SearchConfig):
    """The Bing Web Search API (v7)."""

    base_url: str = Field(
        default="https://api.bing.microsoft.com", description="The Bing Search API's URL."
    )
    market: str | None = Field(
        default=None, description="Bing's `mkt` (e.g. en-US); unset lets Bing choose."
    )
