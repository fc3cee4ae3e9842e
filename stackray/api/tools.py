"""The ToolGroups and ToolRuntime APIs: tool groups, their tools, and invoking them."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import Field

from stackray.api.common import URL, ApiModel, InterleavedContent, JsonValue, ResourceId
from stackray.api.datatypes import Api, ResourceType
from stackray.api.routes import Param, Route


class ToolParameter(ApiModel):
    name: str
    parameter_type: str
    description: str
    required: bool = True
    default: JsonValue = None


class ToolDef(ApiModel):
    """A tool as a model sees it: name, description, parameters."""

    name: str
    description: str | None = None
    parameters: list[ToolParameter] | None = None
    metadata: dict[str, JsonValue] | None = None


class Tool(ApiModel):
    """A registered tool (of a tool group)."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.tool] = ResourceType.tool
    toolgroup_id: str
    description: str
    parameters: list[ToolParameter]
    metadata: dict[str, JsonValue] | None = None


class ToolGroup(ApiModel):
    """A registered tool group (``builtin::rag``, ``builtin::websearch``, an MCP server ...)."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.tool_group] = ResourceType.tool_group
    mcp_endpoint: URL | None = None
    args: dict[str, JsonValue] | None = None


class RegisterToolGroupRequest(ApiModel):
    toolgroup_id: ResourceId
    provider_id: str
    mcp_endpoint: URL | None = None
    args: dict[str, JsonValue] | None = None


class ListToolGroupsResponse(ApiModel):
    data: list[ToolGroup]


class ListToolsResponse(ApiModel):
    data: list[Tool]


class ListToolDefsResponse(ApiModel):
    data: list[ToolDef]


class InvokeToolRequest(ApiModel):
    tool_name: str
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)


class ToolInvocationResult(ApiModel):
    content: InterleavedContent | None = None
    error_message: str | None = None
    error_code: int | None = None
    metadata: dict[str, JsonValue] | None = None


class ToolRuntimeProvider(Protocol):
    """What a tool runtime provider implements. The router owns the tool group and tool
    registries; a provider only lists the tools of a group and runs them."""

    mcp: bool
    """True for a provider whose tool groups point at an MCP endpoint (`mcp_endpoint`)."""

    async def list_runtime_tools(self, group: ToolGroup) -> ListToolDefsResponse:
        """The tools `group` offers now (an MCP server is asked; builtins are fixed)."""
        ...

    async def invoke_tool(
        self, tool_name: str, kwargs: dict[str, JsonValue], group: ToolGroup
    ) -> ToolInvocationResult:
        """Run the provider's tool `tool_name` of `group` with `kwargs`. A tool that ran
        and failed is a result with `error_message`; a call that could not be made raises."""
        ...


class ToolRuntimeApi(Protocol):
    """The ToolRuntime API as another API calls it (agents' tools)."""

    async def list_runtime_tools(
        self, tool_group_id: str | None = None, mcp_endpoint: URL | None = None
    ) -> ListToolDefsResponse: ...

    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult: ...


ROUTES = (
    Route(
        "GET", "/v1/toolgroups", Api.tool_groups, "list_tool_groups", returns=ListToolGroupsResponse
    ),
    Route(
        "POST",
        "/v1/toolgroups",
        Api.tool_groups,
        "register_tool_group",
        body=RegisterToolGroupRequest,
        empty=True,
    ),
    # Group ids contain '::' and may contain '/': take the rest of the path.
    Route(
        "GET",
        "/v1/toolgroups/{toolgroup_id:path}",
        Api.tool_groups,
        "get_tool_group",
        returns=ToolGroup,
    ),
    Route(
        "DELETE",
        "/v1/toolgroups/{toolgroup_id:path}",
        Api.tool_groups,
        "unregister_toolgroup",
        empty=True,
    ),
    Route(
        "GET",
        "/v1/tools",
        Api.tool_groups,
        "list_tools",
        query=(Param("toolgroup_id"),),
        returns=ListToolsResponse,
    ),
    Route("GET", "/v1/tools/{tool_name:path}", Api.tool_groups, "get_tool", returns=Tool),
    # `mcp_endpoint` comes in several query forms: read by the gateway's handler.
    Route(
        "GET",
        "/v1/tool-runtime/list-tools",
        Api.tool_runtime,
        "list_runtime_tools",
        query=(Param("tool_group_id"), Param("mcp_endpoint")),
        returns=ListToolDefsResponse,
        handler="runtime_tools",
    ),
    Route(
        "POST",
        "/v1/tool-runtime/invoke",
        Api.tool_runtime,
        "invoke_tool",
        body=InvokeToolRequest,
        returns=ToolInvocationResult,
    ),
)
