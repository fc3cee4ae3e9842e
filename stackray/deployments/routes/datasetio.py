"""Routes of the datasets and datasetio APIs."""

from __future__ import annotations

from fastapi import Query
from fastapi.responses import Response

from stackray.api.datasetio import AppendRowsRequest, RegisterDatasetRequest
from stackray.api.datatypes import Api
from stackray.deployments.routes import Routes

DATASETIO = Api.datasetio.value


def register(routes: Routes) -> None:
    call, json = routes.call, routes.json

    # ---- datasets ----------------------------------------------------------------------

    async def list_datasets() -> Response:
        return json(await call(DATASETIO, "list_datasets"))

    async def register_dataset(body: RegisterDatasetRequest) -> Response:
        return json(await call(DATASETIO, "register_dataset", body))

    async def get_dataset(dataset_id: str) -> Response:
        return json(await call(DATASETIO, "get_dataset", dataset_id))

    async def unregister_dataset(dataset_id: str) -> Response:
        await call(DATASETIO, "unregister_dataset", dataset_id)
        return json(None)

    routes.add(Api.datasets, "GET", "/v1/datasets", list_datasets)
    routes.add(Api.datasets, "POST", "/v1/datasets", register_dataset)
    routes.add(Api.datasets, "GET", "/v1/datasets/{dataset_id:path}", get_dataset)
    routes.add(Api.datasets, "DELETE", "/v1/datasets/{dataset_id:path}", unregister_dataset)

    # ---- datasetio ---------------------------------------------------------------------

    async def iterrows(
        dataset_id: str,
        start_index: int | None = Query(default=None),
        limit: int | None = Query(default=None),
    ) -> Response:
        return json(await call(DATASETIO, "iterrows", dataset_id, start_index, limit))

    async def append_rows(dataset_id: str, body: AppendRowsRequest) -> Response:
        await call(DATASETIO, "append_rows", dataset_id, body)
        return json(None)

    routes.add(Api.datasetio, "GET", "/v1/datasetio/iterrows/{dataset_id:path}", iterrows)
    routes.add(Api.datasetio, "POST", "/v1/datasetio/append-rows/{dataset_id:path}", append_rows)
