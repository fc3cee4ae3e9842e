"""Settings of `remote::brave-search`."""

from __future__ import annotations

from pydantic import Field

from stackray.providers.remote.tool_runtime.web import SearchConfig


class BraveSearchToolConfig(SearchConfig):
    """The Brave Search API."""

    base_url: str = Field(
        default="https://api.search.brave.com", description="The Brave Search API's URL."
    )
