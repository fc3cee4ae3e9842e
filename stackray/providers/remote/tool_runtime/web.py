"""What the web-service tool providers share (Tavily, Brave, Bing, Wolfram|Alpha).

Each offers one tool taking a `query`. The key comes from the request's provider data
(``<service>_api_key``) or the provider's config; without either the call is a 400 naming
the provider-data field to set. HTTP goes through `RemoteClient` (timeouts, retries of
429/503 and connection failures, upstream statuses mapped to the stack's errors), at a
configurable base URL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from stackray.api.common import JsonValue
from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.tools import (
    ListToolDefsResponse,
    ToolDef,
    ToolGroup,
    ToolInvocationResult,
    ToolParameter,
)
from stackray.providers.remote.inference.client import RemoteClient
from stackray.runtime.request_context import PROVIDER_DATA_HEADER

if TYPE_CHECKING:
    from stackray.runtime.resolver import ProviderContext


class WebToolConfig(BaseModel):
    """Settings every web-service tool provider takes."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(
        default=None,
        description="The service's API key; a request's provider data may give its own instead.",
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Seconds to wait for the service.")
    max_retries: int = Field(
        default=2, ge=0, description="Retries of a call that could not connect or got 429/503."
    )


class SearchConfig(WebToolConfig):
    """Settings of a web search provider."""

    max_results: int = Field(
        default=3, ge=1, le=50, description="How many results a search returns."
    )


class KeyedClient(RemoteClient):
    """`RemoteClient` sending the key in the header the service wants, and naming the
    provider-data field to set when there is no key."""

    def __init__(
        self, *args: Any, auth_header: str | None, auth_prefix: str = "", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.auth_header = auth_header
        self.auth_prefix = auth_prefix

    def api_key(self) -> str | None:
        try:
            return super().api_key()
        except BadRequestError as e:
            raise BadRequestError(
                e.message, field=f"{PROVIDER_DATA_HEADER}.{self.provider_data_key}"
            ) from None

    def _headers(self) -> dict[str, str]:
        key = self.api_key()
        if not key or self.auth_header is None:
            return {}
        return {self.auth_header: self.auth_prefix + key}


class WebToolAdapter:
    """A provider with one tool that takes a `query` and calls a web service."""

    mcp = False

    tool_name: ClassVar[str]
    tool_description: ClassVar[str]
    query_description: ClassVar[str] = "The query to search for"
    provider_data_key: ClassVar[str]
    auth_header: ClassVar[str | None] = None
    auth_prefix: ClassVar[str] = ""

    def __init__(self, config: Any, deps: dict[Any, Any], context: ProviderContext) -> None:
        self.config = config
        self.provider_id = context.provider_id
        self.client = KeyedClient(
            context.provider_id,
            config.base_url,
            api_key=config.api_key,
            provider_data_key=self.provider_data_key,
            requires_api_key=True,
            timeout_s=config.timeout_s,
            connect_timeout_s=min(10.0, config.timeout_s),
            max_retries=config.max_retries,
            auth_header=self.auth_header,
            auth_prefix=self.auth_prefix,
        )

    def tool_definition(self) -> ToolDef:
        return ToolDef(
            name=self.tool_name,
            description=self.tool_description,
            parameters=[
                ToolParameter(
                    name="query", parameter_type="string", description=self.query_description
                )
            ],
        )

    async def list_runtime_tools(self, group: ToolGroup) -> ListToolDefsResponse:
        return ListToolDefsResponse(data=[self.tool_definition()])

    async def invoke_tool(
        self, tool_name: str, kwargs: dict[str, JsonValue], group: ToolGroup
    ) -> ToolInvocationResult:
        if tool_name != self.tool_name:
            raise NotFoundError(
                f"provider '{self.provider_id}' has no tool {tool_name!r} (it has {self.tool_name!r})",
                field="tool_name",
            )
        query = kwargs.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequestError(
                f"tool {self.tool_name!r} needs a non-empty string 'query'", field="kwargs.query"
            )
        self.client.api_key()  # a missing key is the caller's 400, before any HTTP
        return await self.run(query)

    async def run(self, query: str) -> ToolInvocationResult:
        raise NotImplementedError

    async def get(self, path: str, params: dict[str, Any]) -> Any:
        return await self.client.request_json("GET", f"{path}?{urlencode(params)}")

    @staticmethod
    def json_result(value: Any) -> ToolInvocationResult:
        """Results as the JSON text a model reads, as Llama Stack's search tools give them."""
        return ToolInvocationResult(content=json.dumps(value, ensure_ascii=False))
