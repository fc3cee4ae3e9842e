"""What the datasetio providers share: their config fields and the rows appended to a
dataset, kept in a table of the store (`dataset_rows`) so that every replica reads them
and they survive a restart."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stackray.api.datasetio import Dataset
from stackray.api.errors import BadRequestError
from stackray.runtime.resolver import ProviderContext
from stackray.runtime.storage import DocumentStore, StoreConfig

APPENDED_ROWS_TABLE = "dataset_rows"


class DatasetIOProviderConfig(BaseModel):
    """Settings every datasetio provider has."""

    model_config = ConfigDict(extra="forbid")

    kvstore: StoreConfig | None = Field(
        default=None,
        description="Where the rows appended to datasets are kept (SQLite or PostgreSQL); "
        "default the stack's metadata store.",
    )
    max_rows_per_request: int = Field(
        default=10_000, ge=1, description="Most rows one append-rows request may carry."
    )


class AppendedRows:
    """The rows appended to each dataset, in the order they were appended."""

    def __init__(self, config: DatasetIOProviderConfig, context: ProviderContext) -> None:
        self.max_rows = config.max_rows_per_request
        self.store = DocumentStore(
            config.kvstore or context.stack.metadata_store_config(),
            APPENDED_ROWS_TABLE,
            {"dataset_id": str, "seq": int},
        )

    def append(self, dataset: Dataset, rows: list[dict[str, Any]]) -> None:
        if len(rows) > self.max_rows:
            raise BadRequestError(
                f"{len(rows)} rows in one request; this provider takes at most "
                f"{self.max_rows} (max_rows_per_request)",
                field="rows",
            )
        if not rows:
            return
        # One document per request; time_ns orders appends across replicas, the id breaks ties.
        append_id = uuid.uuid4().hex
        self.store.put(
            append_id,
            {
                "dataset_id": dataset.identifier,
                "seq": time.time_ns(),
                "append_id": append_id,
                "rows": rows,
            },
        )

    def rows(self, dataset: Dataset) -> list[dict[str, Any]]:
        docs, _ = self.store.query({"dataset_id": dataset.identifier}, order_by="seq", desc=False)
        return [row for doc in docs for row in doc["rows"]]

    def clear(self, dataset: Dataset) -> None:
        docs, _ = self.store.query({"dataset_id": dataset.identifier}, order_by="seq")
        for doc in docs:
            self.store.delete(doc["append_id"])
