"""ToolRuntimeRouter: the tool groups and tools registries, and tool invocation.

A tool group (``builtin::websearch``, an MCP server ...) belongs to one tool runtime
provider. When a group is registered its tools are listed from the provider and stored
with it; `invoke_tool` finds a tool by name, checks the arguments against the tool's
parameters, and calls the group's provider.

Tool listings are refreshed on demand: registering a group again (same provider and
endpoint), or asking the runtime for the group's tools (`list_runtime_tools`), stores what
the provider offers now; a group whose tools could not be listed yet (say its MCP server
was down when the stack started) is listed the next time its tools are asked for. Everything lives in the metadata store, so every replica sees the same registry.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import Field

from stackray.api.common import URL, ApiModel, JsonValue
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError, StackError
from stackray.api.rag import InsertRequest, QueryRequest, RAGQueryResult
from stackray.api.tools import (
    InvokeToolRequest,
    ListToolDefsResponse,
    ListToolGroupsResponse,
    ListToolsResponse,
    RegisterToolGroupRequest,
    Tool,
    ToolDef,
    ToolGroup,
    ToolInvocationResult,
)
from stackray.runtime.access_control import Action
from stackray.runtime.resources import ResourceRegistry

logger = logging.getLogger("stackray.tool_runtime")

TOOL_GROUPS = "tool_groups"
TOOL_LISTINGS = "tool_listings"


class ToolListing(ApiModel):
    """The tools of one group as last listed from its provider."""

    toolgroup_id: str
    tools: list[Tool] = Field(default_factory=list)
    listed_at: float


# JSON-schema type names (and the Python-ish ones some tool definitions use) -> a check.
_TYPE_CHECKS: dict[str, tuple[str, Any]] = {
    "string": ("a string", lambda v: isinstance(v, str)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "boolean": ("a boolean", lambda v: isinstance(v, bool)),
    "bool": ("a boolean", lambda v: isinstance(v, bool)),
    "array": ("an array", lambda v: isinstance(v, list)),
    "list": ("an array", lambda v: isinstance(v, list)),
    "object": ("an object", lambda v: isinstance(v, dict)),
    "dict": ("an object", lambda v: isinstance(v, dict)),
}


def check_tool_arguments(tool: Tool, kwargs: dict[str, JsonValue]) -> None:
    """400 naming the argument when a required parameter is missing or an argument has
    the wrong type. Arguments the tool does not declare pass through (agents send
    group-level arguments such as ``vector_db_ids`` with every call)."""
    for param in tool.parameters:
        field = f"kwargs.{param.name}"
        if param.name not in kwargs or kwargs[param.name] is None:
            if param.required and param.default is None:
                raise BadRequestError(
                    f"tool {tool.identifier!r} needs argument {param.name!r} "
                    f"({param.parameter_type}: {param.description or 'no description'})",
                    field=field,
                )
            continue
        check = _TYPE_CHECKS.get(param.parameter_type.lower())
        if check is not None and not check[1](kwargs[param.name]):
            raise BadRequestError(
                f"argument {param.name!r} of tool {tool.identifier!r} must be {check[0]}, "
                f"got {type(kwargs[param.name]).__name__}",
                field=field,
            )


class ToolRuntimeRouter:
    """Serves the tool_groups, tools and tool_runtime APIs."""

    def __init__(
        self,
        providers: dict[str, Any],
        registry: ResourceRegistry,
        provider_types: dict[str, str] | None = None,
    ) -> None:
        self.providers = providers
        self.registry = registry
        self.provider_types = provider_types or {}

    async def health(self) -> None:
        self.registry.store.get("health")

    # ---- tool groups --------------------------------------------------------------------

    def _provider(self, provider_id: str, field: str = "provider_id") -> Any:
        provider = self.providers.get(provider_id)
        if provider is None:
            raise BadRequestError(
                f"no tool runtime provider {provider_id!r} "
                f"(providers: {', '.join(sorted(self.providers)) or 'none'})",
                field=field,
            )
        return provider

    def _check_group(self, group: ToolGroup) -> None:
        provider = self._provider(group.provider_id)
        if getattr(provider, "mcp", False):
            if group.mcp_endpoint is None:
                raise BadRequestError(
                    f"provider {group.provider_id!r} serves MCP servers: tool group "
                    f"{group.identifier!r} needs mcp_endpoint {{uri: ...}}",
                    field="mcp_endpoint",
                )
            if not group.mcp_endpoint.uri.startswith(("http://", "https://")):
                raise BadRequestError(
                    f"mcp_endpoint.uri must be an http(s) URL, got {group.mcp_endpoint.uri!r}",
                    field="mcp_endpoint.uri",
                )
        elif group.mcp_endpoint is not None:
            raise BadRequestError(
                f"provider {group.provider_id!r} does not serve MCP servers; "
                f"mcp_endpoint is for an MCP provider's tool groups",
                field="mcp_endpoint",
            )

    async def register_tool_group(self, request: RegisterToolGroupRequest) -> ToolGroup:
        """Register a group and list its tools; registering it again refreshes them.
        A new group whose tools cannot be listed is not kept."""
        new = self.registry.get_for_create(ToolGroup, TOOL_GROUPS, request.toolgroup_id) is None
        group = await self._register(request)
        try:
            await self._list_group(group)
        except Exception:
            if new:
                self.registry.delete(TOOL_GROUPS, group.identifier)
            raise
        return group

    async def _register(
        self, request: RegisterToolGroupRequest, replace: bool = False
    ) -> ToolGroup:
        group = ToolGroup(
            identifier=request.toolgroup_id,
            provider_id=request.provider_id,
            provider_resource_id=request.toolgroup_id,
            mcp_endpoint=request.mcp_endpoint,
            args=request.args,
        )
        self._check_group(group)
        existing = self.registry.get_for_create(ToolGroup, TOOL_GROUPS, group.identifier)
        if existing is not None:
            changed = (existing.provider_id, existing.mcp_endpoint) != (
                group.provider_id,
                group.mcp_endpoint,
            )
            if changed and replace:
                self.registry.delete(TOOL_LISTINGS, group.identifier)
                self.registry.put(TOOL_GROUPS, group.identifier, group)
                return group
            if changed:
                raise ConflictError(
                    f"tool group {group.identifier!r} is already registered with provider "
                    f"{existing.provider_id!r}"
                    + (f" at {existing.mcp_endpoint.uri}" if existing.mcp_endpoint else "")
                    + "; unregister it first"
                )
            if existing.args != group.args:
                self.registry.put(TOOL_GROUPS, group.identifier, group)
            return group
        if not self.registry.put_if_absent(TOOL_GROUPS, group.identifier, group):
            return await self._register(request, replace)  # registered meanwhile elsewhere
        return group

    async def register_config_tool_group(self, request: RegisterToolGroupRequest) -> ToolGroup:
        """Register a group of the run config. The run config wins over a stored group of
        the same id. The stack starts even when the group's tools cannot be listed now (an
        MCP server not up yet): they are listed on demand."""
        group = await self._register(request, replace=True)
        try:
            await self._list_group(group)
        except StackError as e:
            logger.warning(
                "tool group %r: its tools could not be listed at start (%s); "
                "they will be listed when first asked for",
                group.identifier,
                e.message,
            )
        return group

    async def list_tool_groups(self) -> ListToolGroupsResponse:
        return ListToolGroupsResponse(data=self.registry.list(ToolGroup, TOOL_GROUPS))

    async def get_tool_group(self, toolgroup_id: str) -> ToolGroup:
        group = self.registry.get(ToolGroup, TOOL_GROUPS, toolgroup_id)
        if group is None:
            raise NotFoundError(
                f"tool group {toolgroup_id!r} not found; GET /v1/toolgroups lists the registered groups",
                field="toolgroup_id",
            )
        return group

    async def unregister_toolgroup(self, toolgroup_id: str) -> None:
        group = await self.get_tool_group(toolgroup_id)
        self.registry.require(Action.delete, TOOL_GROUPS, group.identifier)
        self.registry.delete(TOOL_LISTINGS, group.identifier)
        self.registry.delete(TOOL_GROUPS, group.identifier)

    # ---- tools --------------------------------------------------------------------------

    async def _list_group(
        self, group: ToolGroup, defs: ListToolDefsResponse | None = None
    ) -> ToolListing:
        """Store `group`'s tools: `defs`, or listed from its provider now."""
        if defs is None:
            defs = await self._provider(group.provider_id).list_runtime_tools(group)
        tools = [self._tool(group, d) for d in defs.data]
        names = [t.identifier for t in tools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BadRequestError(
                f"tool group {group.identifier!r} lists tool(s) {', '.join(dupes)} more than once"
            )
        for other in self.registry.list(ToolListing, TOOL_LISTINGS):
            if other.toolgroup_id == group.identifier:
                continue
            clash = sorted({t.identifier for t in other.tools} & set(names))
            if clash:
                raise ConflictError(
                    f"tool group {group.identifier!r} has tool(s) {', '.join(clash)}, already "
                    f"offered by tool group {other.toolgroup_id!r}; tool names are unique"
                )
        listing = ToolListing(toolgroup_id=group.identifier, tools=tools, listed_at=time.time())
        if self.registry.get(ToolGroup, TOOL_GROUPS, group.identifier) is None:
            raise NotFoundError(f"tool group {group.identifier!r} was unregistered meanwhile")
        self.registry.put(TOOL_LISTINGS, group.identifier, listing)
        return listing

    @staticmethod
    def _tool(group: ToolGroup, tool_def: ToolDef) -> Tool:
        return Tool(
            identifier=tool_def.name,
            provider_resource_id=tool_def.name,
            provider_id=group.provider_id,
            toolgroup_id=group.identifier,
            description=tool_def.description or "",
            parameters=tool_def.parameters or [],
            metadata=tool_def.metadata,
        )

    async def _listing(self, group: ToolGroup) -> ToolListing:
        listing = self.registry.get(ToolListing, TOOL_LISTINGS, group.identifier)
        return listing if listing is not None else await self._list_group(group)

    async def list_tools(self, toolgroup_id: str | None = None) -> ListToolsResponse:
        """The tools of every group, of one group, or (``<group>/<tool>``, as the client's
        `Agent` helper asks for the tools an agent names) one tool of a group."""
        if toolgroup_id is not None:
            group_id, tool_name = toolgroup_id, None
            if "/" in toolgroup_id and not self.registry.get(ToolGroup, TOOL_GROUPS, toolgroup_id):
                group_id, _, tool_name = toolgroup_id.rpartition("/")
            listing = await self._listing(await self.get_tool_group(group_id))
            if tool_name is None:
                return ListToolsResponse(data=listing.tools)
            named = [t for t in listing.tools if t.identifier == tool_name]
            if not named:
                raise NotFoundError(
                    f"tool group {group_id!r} has no tool {tool_name!r}", field="toolgroup_id"
                )
            return ListToolsResponse(data=named)
        tools: list[Tool] = []
        for group in self.registry.list(ToolGroup, TOOL_GROUPS):
            try:
                tools.extend((await self._listing(group)).tools)
            except StackError as e:
                # One unreachable MCP server does not hide every other group's tools.
                logger.warning("tool group %r: cannot list its tools: %s", group.identifier, e)
        return ListToolsResponse(data=tools)

    async def get_tool(self, tool_name: str) -> Tool:
        # Only the tools of groups the caller may read: listings are not owned themselves.
        readable = {g.identifier for g in self.registry.list(ToolGroup, TOOL_GROUPS)}
        for listing in self.registry.list(ToolListing, TOOL_LISTINGS):
            if listing.toolgroup_id not in readable:
                continue
            for tool in listing.tools:
                if tool.identifier == tool_name:
                    return tool
        # Groups not listed yet may have it.
        listed = {
            listing.toolgroup_id for listing in self.registry.list(ToolListing, TOOL_LISTINGS)
        }
        for group in self.registry.list(ToolGroup, TOOL_GROUPS):
            if group.identifier in listed:
                continue
            try:
                listing = await self._list_group(group)
            except StackError:
                continue
            for tool in listing.tools:
                if tool.identifier == tool_name:
                    return tool
        raise NotFoundError(
            f"tool {tool_name!r} not found; GET /v1/tools lists the tools of the registered groups",
            field="tool_name",
        )

    # ---- tool runtime -------------------------------------------------------------------

    def _mcp_provider_id(self) -> str:
        for provider_id, provider in self.providers.items():
            if getattr(provider, "mcp", False):
                return provider_id
        raise BadRequestError(
            "this stack runs no MCP tool runtime provider (remote::model-context-protocol)",
            field="mcp_endpoint",
        )

    async def list_runtime_tools(
        self, tool_group_id: str | None = None, mcp_endpoint: URL | None = None
    ) -> ListToolDefsResponse:
        """The tools as the provider offers them now: of a registered group, of any MCP
        endpoint, or (given neither) of every registered group."""
        if tool_group_id is not None:
            group = await self.get_tool_group(tool_group_id)
            if mcp_endpoint is not None and mcp_endpoint != group.mcp_endpoint:
                group = group.model_copy(update={"mcp_endpoint": mcp_endpoint})
                self._check_group(group)
                other: ListToolDefsResponse = await self._provider(
                    group.provider_id
                ).list_runtime_tools(group)
                return other
            result: ListToolDefsResponse = await self._provider(
                group.provider_id
            ).list_runtime_tools(group)
            # The group's stored tools are refreshed with what the provider offers now.
            await self._list_group(group, result)
            return result
        if mcp_endpoint is not None:
            provider_id = self._mcp_provider_id()
            group = ToolGroup(
                identifier=f"mcp::{mcp_endpoint.uri}",
                provider_id=provider_id,
                mcp_endpoint=mcp_endpoint,
            )
            self._check_group(group)
            result = await self.providers[provider_id].list_runtime_tools(group)
            return result
        tools = (await self.list_tools()).data
        return ListToolDefsResponse(
            data=[
                ToolDef(
                    name=t.identifier,
                    description=t.description,
                    parameters=t.parameters,
                    metadata=t.metadata,
                )
                for t in tools
            ]
        )

    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult:
        tool = await self.get_tool(request.tool_name)
        group = self.registry.get(ToolGroup, TOOL_GROUPS, tool.toolgroup_id)
        if group is None:
            raise NotFoundError(
                f"tool {tool.identifier!r}: its tool group {tool.toolgroup_id!r} was unregistered",
                field="tool_name",
            )
        kwargs: dict[str, JsonValue] = {**(group.args or {}), **request.kwargs}
        check_tool_arguments(tool, kwargs)
        provider = self._provider(group.provider_id, field="tool_name")
        result: ToolInvocationResult = await provider.invoke_tool(
            tool.provider_resource_id or tool.identifier, kwargs, group
        )
        return result

    # ---- the RAG tool -------------------------------------------------------------------

    def _rag_provider(self) -> Any:
        for provider_id, provider_type in self.provider_types.items():
            if provider_type == "inline::rag-runtime":
                return self.providers[provider_id]
        raise NotFoundError(
            "the RAG tool is not served by this stack: add an inline::rag-runtime provider "
            "under providers.tool_runtime"
        )

    async def rag_tool_insert(self, request: InsertRequest) -> None:
        await self._rag_provider().rag_insert(request)

    async def rag_tool_query(self, request: QueryRequest) -> RAGQueryResult:
        result: RAGQueryResult = await self._rag_provider().rag_query(request)
        return result


async def build_router(
    stack: Any, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> ToolRuntimeRouter:
    """The tool runtime router (`ROUTERS[Api.tool_runtime]`): its providers in-process
    (each given the APIs it uses, e.g. vector_io and inference for the RAG tool), and
    the run config's `tool_groups` registered."""
    from stackray.runtime.resolver import build_providers
    from stackray.runtime.resources import open_registry

    providers = await build_providers(stack, Api.tool_runtime, deps, servers)
    types = {p.provider_id: p.provider_type for p in stack.providers_of(Api.tool_runtime)}
    router = ToolRuntimeRouter(providers, open_registry(stack), types)
    for group in stack.tool_groups:
        await router.register_config_tool_group(
            RegisterToolGroupRequest(
                toolgroup_id=group.toolgroup_id,
                provider_id=group.provider_id,
                mcp_endpoint=URL.model_validate(group.mcp_endpoint) if group.mcp_endpoint else None,
                args=group.args,
            )
        )
    return router
