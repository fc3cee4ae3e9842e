"""The telemetry router: the telemetry API over the stack's telemetry provider, and the
export of spans into a dataset through the datasetio API (when the stack serves it)."""

from __future__ import annotations

import importlib
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConfigError
from stackray.api.telemetry import (
    GetSpanTreeRequest,
    LogEventRequest,
    QueryMetricsRequest,
    QueryMetricsResponse,
    QuerySpansRequest,
    QuerySpansResponse,
    QuerySpanTreeResponse,
    QueryTracesRequest,
    QueryTracesResponse,
    SaveSpansToDatasetRequest,
    Span,
    Trace,
)
from stackray.runtime.config import StackConfig
from stackray.runtime.resolver import build_providers


class TelemetryRouter:
    def __init__(self, provider: Any, datasetio: Any | None = None) -> None:
        self.provider = provider
        self.datasetio = datasetio

    async def health(self) -> None:
        """Raises if the trace store is unreachable (when the provider can tell)."""
        check = getattr(self.provider, "health", None)
        if check is not None:
            await check()

    async def log_event(self, request: LogEventRequest) -> None:
        await self.provider.log_event(request)

    async def query_traces(self, request: QueryTracesRequest) -> QueryTracesResponse:
        traces = await self.provider.query_traces(
            request.attribute_filters,
            100 if request.limit is None else request.limit,
            request.offset or 0,
            request.order_by,
        )
        return QueryTracesResponse(data=traces)

    async def get_trace(self, trace_id: str) -> Trace:
        trace: Trace = await self.provider.get_trace(trace_id)
        return trace

    async def get_span(self, trace_id: str, span_id: str) -> Span:
        span: Span = await self.provider.get_span(trace_id, span_id)
        return span

    async def get_span_tree(
        self, span_id: str, request: GetSpanTreeRequest
    ) -> QuerySpanTreeResponse:
        tree = await self.provider.get_span_tree(
            span_id, request.attributes_to_return, request.max_depth
        )
        return QuerySpanTreeResponse(data=tree)

    async def query_spans(self, request: QuerySpansRequest) -> QuerySpansResponse:
        spans = await self.provider.query_spans(
            request.attribute_filters, request.attributes_to_return, request.max_depth
        )
        return QuerySpansResponse(data=spans)

    async def query_metrics(
        self, metric_name: str, request: QueryMetricsRequest
    ) -> QueryMetricsResponse:
        return QueryMetricsResponse(data=await self.provider.query_metrics(metric_name, request))

    async def save_spans_to_dataset(self, request: SaveSpansToDatasetRequest) -> None:
        """Append the matching spans, one row each (ids, name, times and the attributes
        asked for), to dataset `dataset_id` through the datasetio API."""
        if self.datasetio is None:
            raise BadRequestError(
                "cannot save spans to a dataset: the datasetio API is not served by this "
                "stack (add 'datasetio' to apis)",
                field="dataset_id",
            )
        spans = await self.provider.query_spans(
            request.attribute_filters, request.attributes_to_save, request.max_depth
        )
        rows = [span_row(span) for span in spans]
        await self.datasetio.append_rows(request.dataset_id, append_rows_request(rows))


def span_row(span: Span) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "start_time": span.start_time.isoformat(),
        "end_time": span.end_time.isoformat() if span.end_time else None,
    }
    row.update(span.attributes or {})
    return row


def append_rows_request(rows: list[dict[str, Any]]) -> Any:
    """The datasetio API's `AppendRowsRequest` body (its module defines the model)."""
    try:
        module = importlib.import_module("stackray.api.datasetio")
    except ImportError:
        return {"rows": rows}
    return module.AppendRowsRequest(rows=rows)


async def build_router(
    stack: StackConfig, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> TelemetryRouter:
    """The telemetry router (`ROUTERS[Api.telemetry]`)."""
    providers = stack.providers_of(Api.telemetry)
    if len(providers) != 1:
        raise ConfigError(f"the telemetry API needs exactly one provider, got {len(providers)}")
    guarded = await build_providers(stack, Api.telemetry, deps, servers)
    return TelemetryRouter(guarded[providers[0].provider_id], deps.get(Api.datasetio))
