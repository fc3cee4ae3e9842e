"""`inline::rag-runtime`: the ``builtin::rag`` tool group (tool ``knowledge_search``) and
the RAG tool's insert/query API, over the VectorIO and Inference APIs."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from stackray.api.common import JsonValue
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.rag import InsertRequest, QueryRequest, RAGQueryConfig, RAGQueryResult
from stackray.api.tools import (
    ListToolDefsResponse,
    ToolDef,
    ToolGroup,
    ToolInvocationResult,
    ToolParameter,
)
from stackray.providers.inline.tool_runtime.rag.config import RagToolRuntimeConfig
from stackray.providers.inline.tool_runtime.rag.runtime import RagRuntime

KNOWLEDGE_SEARCH = ToolDef(
    name="knowledge_search",
    description="Search the knowledge base (the vector dbs of the tool group or of the call) "
    "for information relevant to a query.",
    parameters=[
        ToolParameter(
            name="query",
            parameter_type="string",
            description="The query to search for: keywords or a question.",
            required=True,
        )
    ],
)


class RagToolRuntimeImpl:
    mcp = False

    def __init__(self, config: RagToolRuntimeConfig, deps: dict[Api, Any], context: Any) -> None:
        self.runtime = RagRuntime(
            deps[Api.vector_io], deps.get(Api.inference), allowed_dirs=config.allowed_dirs
        )

    async def list_runtime_tools(self, group: ToolGroup) -> ListToolDefsResponse:
        return ListToolDefsResponse(data=[KNOWLEDGE_SEARCH])

    async def invoke_tool(
        self, tool_name: str, kwargs: dict[str, JsonValue], group: ToolGroup
    ) -> ToolInvocationResult:
        if tool_name != KNOWLEDGE_SEARCH.name:
            raise NotFoundError(
                f"tool {tool_name!r} not found in {group.identifier}", field="tool_name"
            )
        vector_db_ids = kwargs.get("vector_db_ids")
        if isinstance(vector_db_ids, str):
            vector_db_ids = [vector_db_ids]
        if not vector_db_ids or not isinstance(vector_db_ids, list):
            raise BadRequestError(
                "knowledge_search needs vector_db_ids (in the tool group's args or the call's kwargs)",
                field="kwargs.vector_db_ids",
            )
        try:
            config = RAGQueryConfig.model_validate(kwargs.get("query_config") or {})
        except ValidationError as e:
            raise BadRequestError(
                f"invalid query_config: {e.errors()[0]['msg']}", field="kwargs.query_config"
            ) from None
        result = await self.runtime.query(
            QueryRequest(
                content=str(kwargs.get("query") or ""),
                vector_db_ids=[str(v) for v in vector_db_ids],
                query_config=config,
            )
        )
        return ToolInvocationResult(
            content=result.content or "No relevant information was found in the knowledge base.",
            metadata=result.metadata,
        )

    async def rag_insert(self, request: InsertRequest) -> None:
        await self.runtime.insert(request)

    async def rag_query(self, request: QueryRequest) -> RAGQueryResult:
        return await self.runtime.query(request)
