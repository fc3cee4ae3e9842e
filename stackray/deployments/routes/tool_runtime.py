"""Routes of the tool_groups, tools and tool_runtime APIs (served by the tool runtime
deployment)."""

from __future__ import annotations

import json

from fastapi import Query, Request
from fastapi.responses import Response

from stackray.api.common import URL
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError
from stackray.api.rag import InsertRequest, QueryRequest
from stackray.api.tools import InvokeToolRequest, RegisterToolGroupRequest
from stackray.deployments.routes import Routes

TOOL_RUNTIME = Api.tool_runtime.value


def mcp_endpoint_param(request: Request) -> URL | None:
    """The `mcp_endpoint` query parameter in each form clients send it:
    ``mcp_endpoint[uri]=...`` (llama-stack-client), ``mcp_endpoint={"uri": ...}`` or a
    plain ``mcp_endpoint=<uri>``."""
    params = request.query_params
    uri = params.get("mcp_endpoint[uri]") or params.get("mcp_endpoint.uri")
    if uri is None:
        raw = params.get("mcp_endpoint")
        if raw is None or raw == "":
            return None
        if raw.lstrip().startswith("{"):
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if not isinstance(value, dict) or not isinstance(value.get("uri"), str):
                raise BadRequestError(
                    'mcp_endpoint must be {"uri": "<url>"} or a URL', field="mcp_endpoint"
                )
            uri = value["uri"]
        else:
            uri = raw
    return URL(uri=uri)


def register(routes: Routes) -> None:
    call, json_ = routes.call, routes.json

    # ---- tool groups -------------------------------------------------------------------

    async def list_tool_groups() -> Response:
        return json_(await call(TOOL_RUNTIME, "list_tool_groups"))

    async def register_tool_group(body: RegisterToolGroupRequest) -> Response:
        await call(TOOL_RUNTIME, "register_tool_group", body)
        return json_(None)

    async def get_tool_group(toolgroup_id: str) -> Response:
        return json_(await call(TOOL_RUNTIME, "get_tool_group", toolgroup_id))

    async def unregister_toolgroup(toolgroup_id: str) -> Response:
        await call(TOOL_RUNTIME, "unregister_toolgroup", toolgroup_id)
        return json_(None)

    routes.add(Api.tool_groups, "GET", "/v1/toolgroups", list_tool_groups)
    routes.add(Api.tool_groups, "POST", "/v1/toolgroups", register_tool_group)
    # Group ids contain '::' and may contain '/': take the rest of the path.
    routes.add(Api.tool_groups, "GET", "/v1/toolgroups/{toolgroup_id:path}", get_tool_group)
    routes.add(
        Api.tool_groups, "DELETE", "/v1/toolgroups/{toolgroup_id:path}", unregister_toolgroup
    )

    # ---- tools ---------------------------------------------------------------------------

    async def list_tools(toolgroup_id: str | None = Query(default=None)) -> Response:
        return json_(await call(TOOL_RUNTIME, "list_tools", toolgroup_id))

    async def get_tool(tool_name: str) -> Response:
        return json_(await call(TOOL_RUNTIME, "get_tool", tool_name))

    routes.add(Api.tool_groups, "GET", "/v1/tools", list_tools)
    routes.add(Api.tool_groups, "GET", "/v1/tools/{tool_name:path}", get_tool)

    # ---- tool runtime --------------------------------------------------------------------

    async def list_runtime_tools(
        request: Request, tool_group_id: str | None = Query(default=None)
    ) -> Response:
        endpoint = mcp_endpoint_param(request)
        return json_(await call(TOOL_RUNTIME, "list_runtime_tools", tool_group_id, endpoint))

    async def invoke_tool(body: InvokeToolRequest) -> Response:
        return json_(await call(TOOL_RUNTIME, "invoke_tool", body))

    routes.add(Api.tool_runtime, "GET", "/v1/tool-runtime/list-tools", list_runtime_tools)
    routes.add(Api.tool_runtime, "POST", "/v1/tool-runtime/invoke", invoke_tool)

    # ---- the RAG tool --------------------------------------------------------------------

    async def rag_tool_insert(body: InsertRequest) -> Response:
        await call(TOOL_RUNTIME, "rag_tool_insert", body)
        return json_(None)

    async def rag_tool_query(body: QueryRequest) -> Response:
        return json_(await call(TOOL_RUNTIME, "rag_tool_query", body))

    routes.add(Api.tool_runtime, "POST", "/v1/tool-runtime/rag-tool/insert", rag_tool_insert)
    routes.add(Api.tool_runtime, "POST", "/v1/tool-runtime/rag-tool/query", rag_tool_query)
