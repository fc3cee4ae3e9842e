"""The Datasets and DatasetIO APIs: registered datasets and reading / appending their rows."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import Field

from stackray.api.common import ApiModel, JsonValue
from stackray.api.datatypes import Api, ResourceType
from stackray.api.routes import Param, Route

Row = dict[str, JsonValue]


class DatasetPurpose(str, Enum):
    """What a dataset is for; each purpose names the columns its rows must have."""

    post_training_messages = "post-training/messages"
    eval_question_answer = "eval/question-answer"
    eval_messages_answer = "eval/messages-answer"


class URIDataSource(ApiModel):
    """Rows read from a URI: a local path or ``file://``, ``data:``, ``http(s)://`` or
    ``huggingface://datasets/<name>?split=...``."""

    type: Literal["uri"] = "uri"
    uri: str


class RowsDataSource(ApiModel):
    """Rows given inline."""

    type: Literal["rows"] = "rows"
    rows: list[Row]


DataSource = Annotated[URIDataSource | RowsDataSource, Field(discriminator="type")]


class Dataset(ApiModel):
    """A registered dataset."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.dataset] = ResourceType.dataset
    purpose: DatasetPurpose
    source: DataSource
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class RegisterDatasetRequest(ApiModel):
    """The body of `POST /v1/datasets`."""

    purpose: DatasetPurpose
    source: DataSource
    metadata: dict[str, JsonValue] | None = None
    dataset_id: str | None = None


class ListDatasetsResponse(ApiModel):
    data: list[Dataset]


class AppendRowsRequest(ApiModel):
    """The body of `POST /v1/datasetio/append-rows/{dataset_id}`."""

    rows: list[Row]


class PaginatedResponse(ApiModel):
    """A page of rows: `has_more` tells whether rows follow it."""

    data: list[Row]
    has_more: bool
    url: str | None = None


# ---------------------------------------------------------------------------------------
# What a datasetio provider implements
# ---------------------------------------------------------------------------------------


@runtime_checkable
class DatasetIOProvider(Protocol):
    """Reads the rows of a dataset's source.

    The router owns the dataset registry and checks rows against the dataset's purpose; a
    provider reads the source and keeps the appended rows.
    """

    async def register_dataset(self, dataset: Dataset) -> Dataset:
        """Check that the provider can read `dataset`'s source (refusing it, naming why)."""
        ...

    async def unregister_dataset(self, dataset: Dataset) -> None: ...

    async def read_rows(self, dataset: Dataset) -> list[dict[str, Any]]:
        """Every row of the dataset: its source's, then the appended ones, in order."""
        ...

    async def append_rows(self, dataset: Dataset, rows: list[dict[str, Any]]) -> None:
        """Keep `rows` after the dataset's rows (in the provider's store: every replica
        reads them, and they survive a restart)."""
        ...


ROUTES = (
    Route("GET", "/v1/datasets", Api.datasets, "list_datasets", returns=ListDatasetsResponse),
    Route(
        "POST",
        "/v1/datasets",
        Api.datasets,
        "register_dataset",
        body=RegisterDatasetRequest,
        returns=Dataset,
    ),
    Route("GET", "/v1/datasets/{dataset_id:path}", Api.datasets, "get_dataset", returns=Dataset),
    Route(
        "DELETE", "/v1/datasets/{dataset_id:path}", Api.datasets, "unregister_dataset", empty=True
    ),
    Route(
        "GET",
        "/v1/datasetio/iterrows/{dataset_id:path}",
        Api.datasetio,
        "iterrows",
        query=(Param("start_index", int | None), Param("limit", int | None)),
        returns=PaginatedResponse,
    ),
    Route(
        "POST",
        "/v1/datasetio/append-rows/{dataset_id:path}",
        Api.datasetio,
        "append_rows",
        body=AppendRowsRequest,
        empty=True,
    ),
)
