"""Routes of the vector_io and vector_dbs APIs."""

from __future__ import annotations

from fastapi import Query
from fastapi.responses import Response

from stackray.api.datatypes import Api
from stackray.api.vector_io import InsertChunksRequest, QueryChunksRequest, RegisterVectorDbRequest
from stackray.api.vector_stores import (
    OpenaiAttachFileToVectorStoreRequest,
    OpenaiCreateVectorStoreRequest,
    OpenaiSearchVectorStoreRequest,
    OpenaiUpdateVectorStoreFileRequest,
    OpenaiUpdateVectorStoreRequest,
)
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

    # ---- OpenAI vector stores (under /v1/openai/v1 and /v1) ------------------------------

    async def create_vector_store(body: OpenaiCreateVectorStoreRequest) -> Response:
        return json(await call(VECTOR_IO, "openai_create_vector_store", body))

    async def list_vector_stores(
        limit: int | None = Query(default=20),
        order: str | None = Query(default="desc"),
        after: str | None = Query(default=None),
        before: str | None = Query(default=None),
    ) -> Response:
        return json(await call(VECTOR_IO, "openai_list_vector_stores", limit, order, after, before))

    async def retrieve_vector_store(vector_store_id: str) -> Response:
        return json(await call(VECTOR_IO, "openai_retrieve_vector_store", vector_store_id))

    async def update_vector_store(
        vector_store_id: str, body: OpenaiUpdateVectorStoreRequest
    ) -> Response:
        return json(await call(VECTOR_IO, "openai_update_vector_store", vector_store_id, body))

    async def delete_vector_store(vector_store_id: str) -> Response:
        return json(await call(VECTOR_IO, "openai_delete_vector_store", vector_store_id))

    async def search_vector_store(
        vector_store_id: str, body: OpenaiSearchVectorStoreRequest
    ) -> Response:
        return json(await call(VECTOR_IO, "openai_search_vector_store", vector_store_id, body))

    async def attach_file(
        vector_store_id: str, body: OpenaiAttachFileToVectorStoreRequest
    ) -> Response:
        return json(
            await call(VECTOR_IO, "openai_attach_file_to_vector_store", vector_store_id, body)
        )

    async def list_files(
        vector_store_id: str,
        limit: int | None = Query(default=20),
        order: str | None = Query(default="desc"),
        after: str | None = Query(default=None),
        before: str | None = Query(default=None),
        filter: str | None = Query(default=None),
    ) -> Response:
        return json(
            await call(
                VECTOR_IO,
                "openai_list_files_in_vector_store",
                vector_store_id,
                limit,
                order,
                after,
                before,
                filter,
            )
        )

    async def retrieve_file(vector_store_id: str, file_id: str) -> Response:
        return json(
            await call(VECTOR_IO, "openai_retrieve_vector_store_file", vector_store_id, file_id)
        )

    async def update_file(
        vector_store_id: str, file_id: str, body: OpenaiUpdateVectorStoreFileRequest
    ) -> Response:
        return json(
            await call(VECTOR_IO, "openai_update_vector_store_file", vector_store_id, file_id, body)
        )

    async def delete_file(vector_store_id: str, file_id: str) -> Response:
        return json(
            await call(VECTOR_IO, "openai_delete_vector_store_file", vector_store_id, file_id)
        )

    async def file_contents(vector_store_id: str, file_id: str) -> Response:
        return json(
            await call(
                VECTOR_IO, "openai_retrieve_vector_store_file_contents", vector_store_id, file_id
            )
        )

    stores = "/vector_stores"
    one = stores + "/{vector_store_id}"
    files = one + "/files"
    one_file = files + "/{file_id}"
    for method, path, endpoint in (
        ("POST", stores, create_vector_store),
        ("GET", stores, list_vector_stores),
        ("GET", one, retrieve_vector_store),
        ("POST", one, update_vector_store),
        ("DELETE", one, delete_vector_store),
        ("POST", one + "/search", search_vector_store),
        ("POST", files, attach_file),
        ("GET", files, list_files),
        ("GET", one_file, retrieve_file),
        ("POST", one_file, update_file),
        ("DELETE", one_file, delete_file),
        ("GET", one_file + "/content", file_contents),
    ):
        routes.add(Api.vector_io, method, path, endpoint, openai=True)
