"""Stand-ins for the Safety, ToolRuntime and VectorIO routers in the agents unit tests.

Their real routers are built on other branches; until they are merged here, the agents
router is given these objects as `deps[Api.safety]`, `deps[Api.tool_runtime]` and
`deps[Api.vector_io]`. Each implements exactly the methods the agents router calls, with
the real request and response models:

- safety: `get_shield(identifier) -> Shield`, `run_shield(RunShieldRequest) -> RunShieldResponse`
- tool runtime: `list_runtime_tools(tool_group_id, mcp_endpoint) -> ListToolDefsResponse`,
  `invoke_tool(InvokeToolRequest) -> ToolInvocationResult`
- vector IO: `register_vector_db(RegisterVectorDbRequest) -> VectorDB`,
  `insert_chunks(InsertChunksRequest)`, `query_chunks(QueryChunksRequest) -> QueryChunksResponse`,
  `unregister_vector_db(vector_db_id)`

The vector IO stand-in searches with the project's BM25 index (keyword search); the tool
runtime's `knowledge_search` queries it, as `builtin::rag` does.
"""

from __future__ import annotations

from typing import Any

from stackray.api.common import URL, interleaved_content_as_str
from stackray.api.errors import NotFoundError
from stackray.api.safety import (
    RunShieldRequest,
    RunShieldResponse,
    SafetyViolation,
    Shield,
    ViolationLevel,
)
from stackray.api.tools import (
    InvokeToolRequest,
    ListToolDefsResponse,
    ListToolsResponse,
    Tool,
    ToolDef,
    ToolInvocationResult,
    ToolParameter,
)
from stackray.api.vector_io import (
    Chunk,
    InsertChunksRequest,
    QueryChunksRequest,
    QueryChunksResponse,
    RegisterVectorDbRequest,
    VectorDB,
)
from stackray.providers.utils.keyword import BM25Index

REFUSAL = "Sorry, I cannot help with that."


class StandInSafety:
    """Shield `banned-words` flags messages with a banned word (error); `cautious` flags
    them with a warning only."""

    def __init__(self, banned: tuple[str, ...] = ("forbidden",)) -> None:
        self.banned = banned
        self.calls: list[RunShieldRequest] = []

    SHIELDS = ("banned-words", "cautious")

    async def get_shield(self, identifier: str, field: str = "identifier") -> Shield:
        if identifier not in self.SHIELDS:
            raise NotFoundError(f"shield {identifier!r} not found", field=field)
        return Shield(identifier=identifier, provider_id="standin")

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        self.calls.append(request)
        if request.shield_id not in self.SHIELDS:
            raise NotFoundError(f"shield {request.shield_id!r} not found", field="shield_id")
        text = " ".join(interleaved_content_as_str(m.content) for m in request.messages).lower()
        if not any(word in text for word in self.banned):
            return RunShieldResponse()
        level = ViolationLevel.error if request.shield_id == "banned-words" else ViolationLevel.warn
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level=level, user_message=REFUSAL, metadata={"shield": request.shield_id}
            )
        )


class StandInVectorIO:
    def __init__(self) -> None:
        self.dbs: dict[str, VectorDB] = {}
        self.chunks: dict[str, dict[str, Chunk]] = {}
        self.indexes: dict[str, BM25Index] = {}

    async def register_vector_db(self, request: RegisterVectorDbRequest) -> VectorDB:
        db = VectorDB(
            identifier=request.vector_db_id,
            provider_id="standin",
            embedding_model=request.embedding_model,
            embedding_dimension=request.embedding_dimension or 4,
        )
        self.dbs[db.identifier] = db
        self.chunks.setdefault(db.identifier, {})
        self.indexes.setdefault(db.identifier, BM25Index())
        return db

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        self._db(vector_db_id)
        del self.dbs[vector_db_id], self.chunks[vector_db_id], self.indexes[vector_db_id]

    def _db(self, vector_db_id: str) -> str:
        if vector_db_id not in self.dbs:
            raise NotFoundError(f"vector db {vector_db_id!r} not found", field="vector_db_id")
        return vector_db_id

    async def insert_chunks(self, request: InsertChunksRequest) -> None:
        db = self._db(request.vector_db_id)
        for i, chunk in enumerate(request.chunks):
            chunk_id = str(chunk.metadata.get("chunk_id", f"{len(self.chunks[db])}-{i}"))
            self.chunks[db][chunk_id] = chunk
            self.indexes[db].add(chunk_id, interleaved_content_as_str(chunk.content))

    async def query_chunks(self, request: QueryChunksRequest) -> QueryChunksResponse:
        db = self._db(request.vector_db_id)
        k = int((request.params or {}).get("max_chunks", 3))
        hits = self.indexes[db].search(interleaved_content_as_str(request.query), k)
        return QueryChunksResponse(
            chunks=[self.chunks[db][cid] for cid, _ in hits], scores=[s for _, s in hits]
        )


RAG_TOOLS = [
    ToolDef(
        name="knowledge_search",
        description="Search the knowledge base for text relevant to a query.",
        parameters=[
            ToolParameter(name="query", parameter_type="string", description="What to look for")
        ],
    )
]
MATH_TOOLS = [
    ToolDef(
        name="add",
        description="Add two integers.",
        parameters=[
            ToolParameter(name="a", parameter_type="integer", description="first"),
            ToolParameter(name="b", parameter_type="integer", description="second"),
        ],
    )
]


class StandInToolRuntime:
    """Tool groups `builtin::rag` (knowledge_search over the vector IO stand-in) and
    `test::math` (add)."""

    groups = {"builtin::rag": RAG_TOOLS, "test::math": MATH_TOOLS}

    def __init__(self, vector_io: StandInVectorIO) -> None:
        self.vector_io = vector_io
        self.invocations: list[InvokeToolRequest] = []

    async def list_runtime_tools(
        self, tool_group_id: str | None = None, mcp_endpoint: URL | None = None
    ) -> ListToolDefsResponse:
        if tool_group_id is None:
            return ListToolDefsResponse(data=[t for ts in self.groups.values() for t in ts])
        if tool_group_id not in self.groups:
            raise NotFoundError(f"tool group {tool_group_id!r} not found", field="toolgroup_id")
        return ListToolDefsResponse(data=self.groups[tool_group_id])

    def list_tools(self, toolgroup_id: str | None = None) -> ListToolsResponse:
        """What GET /v1/tools answers (the `Agent` helper lists a toolgroup's tools)."""
        groups = [toolgroup_id.partition("/")[0]] if toolgroup_id else list(self.groups)
        return ListToolsResponse(
            data=[
                Tool(
                    identifier=t.name,
                    provider_id="standin",
                    toolgroup_id=g,
                    description=t.description or "",
                    parameters=t.parameters or [],
                )
                for g in groups
                for t in self.groups.get(g, [])
            ]
        )

    async def invoke_tool(self, request: InvokeToolRequest) -> ToolInvocationResult:
        self.invocations.append(request)
        kwargs: dict[str, Any] = request.kwargs
        if request.tool_name == "add":
            return ToolInvocationResult(content=str(int(kwargs["a"]) + int(kwargs["b"])))
        if request.tool_name == "knowledge_search":
            texts = []
            for db in kwargs.get("vector_db_ids") or []:
                result = await self.vector_io.query_chunks(
                    QueryChunksRequest(vector_db_id=db, query=str(kwargs["query"]))
                )
                texts += [interleaved_content_as_str(c.content) for c in result.chunks]
            if not texts:
                return ToolInvocationResult(content="No relevant information found.")
            return ToolInvocationResult(
                content="knowledge_search results: " + " | ".join(texts),
                metadata={"document_count": len(texts)},
            )
        raise NotFoundError(f"tool {request.tool_name!r} not found", field="tool_name")
