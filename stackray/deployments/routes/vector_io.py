"""Routes of the vector_io and vector_dbs APIs."""

from __future__ import annotations

from fastapi.responses import Response

from stackray.api.datatypes import Api
from stackray.api.vector_io import InsertChunksRequest, QueryChunksRequest, RegisterVectorDbRequest
from stackray.deployments.routes import Routes

VECTOR_IO = Api.vector_io.value


def register(routes: Routes) -> None:
    call, json = routes.call, routes.json

    async def list_vector_dbs() -> Response:
        return json(await call(VECTOR_IO, "list_vector_dbs"))

    async def register_vector_db(body: RegisterVectorDbRequest) -> Response:
        return json(await call(VECTOR_IO, "register_vector_db", body))

    async def get_vector_db(vector_db_id: str) -> Response:
        return json(await call(VECTOR_IO, "get_vector_db", vector_db_id))

    async def unregister_vector_db(vector_db_id: str) -> Response:
        await call(VECTOR_IO, "unregister_vector_db", vector_db_id)
        return json(None)

    async def insert_chunks(body: InsertChunksRequest) -> Response:
        await call(VECTOR_IO, "insert_chunks", body)
        return json(None)

    async def query_chunks(body: QueryChunksRequest) -> Response:
        return json(await call(VECTOR_IO, "query_chunks", body))

    routes.add(Api.vector_dbs, "GET", "/v1/vector-dbs", list_vector_dbs)
    routes.add(Api.vector_dbs, "POST", "/v1/vector-dbs", register_vector_db)
    routes.add(Api.vector_dbs, "GET", "/v1/vector-dbs/{vector_db_id:path}", get_vector_db)
    routes.add(Api.vector_dbs, "DELETE", "/v1/vector-dbs/{vector_db_id:path}", unregister_vector_db)
    routes.add(Api.vector_io, "POST", "/v1/vector-io/insert", insert_chunks)
    routes.add(Api.vector_io, "POST", "/v1/vector-io/query", query_chunks)
