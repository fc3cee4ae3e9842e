"""DatasetIORouter: the datasets registry and the rows of each dataset.

It owns the datasets API (register/list/get/unregister; the registry is shared by all
replicas through the metadata store), and routes `iterrows` / `append_rows` to the
dataset's provider: ``huggingface://`` sources to `remote::huggingface`, the rest to
`inline::localfs`, unless ``metadata.provider_id`` names another. Every row read or
appended is checked against the dataset's purpose: a row without the purpose's columns
is a 400 naming the column.
"""

from __future__ import annotations

import uuid
from typing import Any

from stackray.api.datasetio import (
    AppendRowsRequest,
    Dataset,
    DatasetPurpose,
    ListDatasetsResponse,
    PaginatedResponse,
    RegisterDatasetRequest,
    RowsDataSource,
)
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.runtime.access_control import Action
from stackray.runtime.resources import ResourceRegistry

DATASETS = "datasets"

PURPOSE_COLUMNS: dict[DatasetPurpose, tuple[tuple[str, ...], ...]] = {
    # The columns each purpose's rows have: the documented ones first, then the ones
    # Llama Stack 0.2.12's own eval and post-training datasets use (simpleqa, mmlu ...).
    DatasetPurpose.post_training_messages: (("messages",), ("dialog",)),
    DatasetPurpose.eval_question_answer: (
        ("question", "answer"),
        ("input_query", "expected_answer"),
    ),
    DatasetPurpose.eval_messages_answer: (
        ("messages", "answer"),
        ("chat_completion_input", "expected_answer"),
    ),
}

PROVIDER_TYPES = {"huggingface": "remote::huggingface", "default": "inline::localfs"}


def check_purpose(purpose: DatasetPurpose, rows: list[Any], field: str, offset: int = 0) -> None:
    """Raise a 400 naming the first row (as `field[i]`, counted from `offset`) that lacks
    `purpose`'s columns."""
    schemas = PURPOSE_COLUMNS[purpose]
    for i, row in enumerate(rows, start=offset):
        if not isinstance(row, dict):
            raise BadRequestError(
                f"row {i} is a {type(row).__name__}, not an object", field=f"{field}[{i}]"
            )
        if any(all(c in row for c in schema) for schema in schemas):
            continue
        missing = next(c for c in schemas[0] if c not in row)
        described = " or ".join(" and ".join(s) for s in schemas)
        raise BadRequestError(
            f"row {i} has no column {missing!r}: rows of a {purpose.value} dataset have "
            f"{described}",
            field=f"{field}[{i}].{missing}",
        )


def paginate(rows: list[dict[str, Any]], start_index: int | None, limit: int | None) -> Any:
    """A page of `rows` (Llama Stack's offset pagination: limit None or -1 is every row)."""
    if start_index is not None and start_index < 0:
        raise BadRequestError(
            f"start_index must be 0 or more, got {start_index}", field="start_index"
        )
    if limit is not None and limit < -1:
        raise BadRequestError(f"limit must be -1 (all) or more, got {limit}", field="limit")
    start = start_index or 0
    if limit is None or limit == -1:
        return PaginatedResponse(data=rows[start:], has_more=False)
    end = min(start + limit, len(rows))
    return PaginatedResponse(data=rows[start:end], has_more=end < len(rows))


class DatasetIORouter:
    """Serves the datasets API and routes row reads and appends to the dataset's provider."""

    def __init__(
        self, providers: dict[str, Any], types: dict[str, str], registry: ResourceRegistry
    ) -> None:
        self.providers = providers
        self.types = types
        """provider id -> provider type"""
        self.registry = registry

    async def health(self) -> None:
        self.registry.store.get("health")

    # ---- datasets -----------------------------------------------------------------------

    def _provider_for(self, request: RegisterDatasetRequest) -> str:
        requested = (request.metadata or {}).get("provider_id")
        if requested is not None:
            if not isinstance(requested, str) or requested not in self.providers:
                raise BadRequestError(
                    f"no datasetio provider {requested!r} (providers: "
                    f"{', '.join(sorted(self.providers)) or 'none'})",
                    field="metadata.provider_id",
                )
            return requested
        source = request.source
        hub = not isinstance(source, RowsDataSource) and source.uri.lower().startswith(
            "huggingface:"
        )
        wanted = PROVIDER_TYPES["huggingface" if hub else "default"]
        for provider_id, provider_type in self.types.items():
            if provider_type == wanted:
                return provider_id
        raise BadRequestError(
            f"this stack has no {wanted} datasetio provider, which reads "
            + ("huggingface:// sources" if hub else "inline rows and file, data: and http(s) URIs"),
            field="source",
        )

    async def register_dataset(self, request: RegisterDatasetRequest, verify: bool = True) -> Any:
        """Register a dataset; with `verify` its source is read and its rows checked
        against its purpose (at start, the config's URI datasets are read when used)."""
        dataset_id = request.dataset_id or f"dataset-{uuid.uuid4()}"
        if not dataset_id.strip():
            raise BadRequestError("dataset_id must not be blank", field="dataset_id")
        provider_id = self._provider_for(request)
        dataset = Dataset(
            identifier=dataset_id,
            provider_resource_id=dataset_id,
            provider_id=provider_id,
            purpose=request.purpose,
            source=request.source,
            metadata=dict(request.metadata or {}),
        )
        existing = self.registry.get_for_create(Dataset, DATASETS, dataset_id)
        if existing is not None:
            if _same(existing, dataset):
                return existing
            raise ConflictError(
                f"dataset {dataset_id!r} is already registered with another source, purpose "
                "or metadata; unregister it first",
                field="dataset_id",
            )
        self.registry.require(Action.create, DATASETS, dataset_id)
        provider = self.providers[provider_id]
        if isinstance(dataset.source, RowsDataSource):
            check_purpose(dataset.purpose, dataset.source.rows, "source.rows")
        registered: Dataset = await provider.register_dataset(dataset)
        if verify and not isinstance(dataset.source, RowsDataSource):
            rows = await provider.read_rows(registered)
            check_purpose(dataset.purpose, rows, "source.uri")
        if not self.registry.put_if_absent(DATASETS, dataset_id, registered):
            return await self.register_dataset(request, verify)
        return registered

    def list_datasets(self) -> ListDatasetsResponse:
        return ListDatasetsResponse(data=self.registry.list(Dataset, DATASETS))

    def get_dataset(self, dataset_id: str, field: str = "dataset_id") -> Dataset:
        dataset = self.registry.get(Dataset, DATASETS, dataset_id)
        if dataset is None:
            raise NotFoundError(
                f"dataset {dataset_id!r} not found; GET /v1/datasets lists the registered datasets",
                field=field,
            )
        return dataset

    async def unregister_dataset(self, dataset_id: str) -> None:
        dataset = self.get_dataset(dataset_id)
        self.registry.require(Action.delete, DATASETS, dataset.identifier)
        provider = self.providers.get(dataset.provider_id)
        if provider is not None:
            await provider.unregister_dataset(dataset)
        self.registry.delete(DATASETS, dataset.identifier)

    def _route(self, dataset_id: str) -> tuple[Dataset, Any]:
        dataset = self.get_dataset(dataset_id)
        provider = self.providers.get(dataset.provider_id)
        if provider is None:
            raise BadRequestError(
                f"dataset {dataset_id!r} belongs to provider {dataset.provider_id!r}, which "
                "this stack does not run",
                field="dataset_id",
            )
        return dataset, provider

    # ---- rows ---------------------------------------------------------------------------

    async def iterrows(
        self, dataset_id: str, start_index: int | None = None, limit: int | None = None
    ) -> PaginatedResponse:
        dataset, provider = self._route(dataset_id)
        paginate([], start_index, limit)  # bad arguments fail before the source is read
        rows = await provider.read_rows(dataset)
        page: PaginatedResponse = paginate(rows, start_index, limit)
        check_purpose(dataset.purpose, page.data, "dataset_id", offset=start_index or 0)
        return page

    async def append_rows(self, dataset_id: str, request: AppendRowsRequest) -> None:
        dataset, provider = self._route(dataset_id)
        check_purpose(dataset.purpose, request.rows, "rows")
        await provider.append_rows(dataset, request.rows)


def _same(a: Dataset, b: Dataset) -> bool:
    keys = ("provider_id", "purpose", "source", "metadata")
    return a.model_dump(include=set(keys)) == b.model_dump(include=set(keys))


# ---- building the router ----------------------------------------------------------------


async def build_router(
    stack: Any, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> DatasetIORouter:
    """The datasetio router (`ROUTERS[Api.datasetio]`), with the run config's datasets
    registered (idempotent: every replica does it)."""
    from stackray.api.datasetio import URIDataSource
    from stackray.runtime.resolver import build_providers
    from stackray.runtime.resources import open_registry

    providers = await build_providers(stack, Api.datasetio, deps, servers)
    types = {p.provider_id: p.provider_type for p in stack.providers_of(Api.datasetio)}
    router = DatasetIORouter(providers, types, open_registry(stack))
    for i, entry in enumerate(stack.datasets):
        metadata = dict(entry.metadata or {})
        if entry.provider_id is not None:
            metadata.setdefault("provider_id", entry.provider_id)
        source_type = entry.source.get("type")
        source: URIDataSource | RowsDataSource
        try:
            if source_type == "rows":
                source = RowsDataSource.model_validate(entry.source)
            else:
                source = URIDataSource.model_validate(entry.source)
            request = RegisterDatasetRequest(
                dataset_id=entry.dataset_id,
                purpose=DatasetPurpose(entry.purpose),
                source=source,
                metadata=metadata,
            )
        except ValueError as e:
            from stackray.api.errors import ConfigError

            raise ConfigError(f"datasets[{i}] ({entry.dataset_id}): {e}") from None
        await router.register_dataset(request, verify=False)
    return router
