"""Settings of `remote::wolfram-alpha`."""

from __future__ import annotations

from pydantic import Field

from stackray.providers.remote.tool_runtime.web import WebToolConfig


class WolframAlphaToolConfig(WebToolConfig):
    """The Wolfram|Alpha Full Results API (v2)."""

    base_url: str = Field(
        default="https://api.wolframalpha.com", description="The Wolfram|Alpha API's URL."
    )
