"""The telemetry router: the telemetry API over the stack's telemetry provider, and the
export of spans into a dataset through the datasetio API (when the stack serves it).

With authentication, each span names the caller it worked for (`stackray.principal`);
a caller reads a span, a trace (by its root span) or a span tree only when the access
policy lets it read that caller's resources (type ``trace``): otherwise it is absent,
exactly as a missing one."""

from __future__ import annotations

import importlib
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConfigError, NotFoundError
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
from stackray.runtime.access_control import OPEN_POLICY, AccessPolicy, Action
from stackray.runtime.config import StackConfig
from stackray.runtime.request_context import current_user
from stackray.runtime.resolver import build_providers
from stackray.runtime.resources import access_policy
from stackray.runtime.telemetry import PRINCIPAL_ATTR, caller_of
from stackray.runtime.telemetry.tracing import PRINCIPAL_ATTRIBUTES_ATTR

CALLER_ATTRS = [PRINCIPAL_ATTR, PRINCIPAL_ATTRIBUTES_ATTR]
TRACE_SCAN_LIMIT = 10_000
"""Most traces looked at to fill one filtered page."""


class TelemetryRouter:
    def __init__(
        self, provider: Any, datasetio: Any | None = None, policy: AccessPolicy = OPEN_POLICY
    ) -> None:
        self.provider = provider
        self.datasetio = datasetio
        self.policy = policy

    # ---- who may read what --------------------------------------------------------------

    @staticmethod
    def _checked() -> bool:
        return current_user() is not None

    def _readable(self, span: Span) -> bool:
        owner = caller_of(span.attributes)
        return self.policy.allows(Action.read, "trace", span.trace_id, owner)

    @staticmethod
    def _with_caller(attributes: list[str] | None) -> list[str] | None:
        # The caller attributes are needed to decide, whatever the client asked for.
        return None if attributes is None else [*attributes, *CALLER_ATTRS]

    @staticmethod
    def _as_asked(span: Any, attributes: list[str] | None) -> Any:
        if attributes is None or span.attributes is None:
            return span
        kept = {k: v for k, v in span.attributes.items() if k in attributes}
        return span.model_copy(update={"attributes": kept})

    async def _visible_spans(self, spans: list[Any], attributes: list[str] | None) -> list[Any]:
        return [self._as_asked(s, attributes) for s in spans if self._readable(s)]

    async def health(self) -> None:
        """Raises if the trace store is unreachable (when the provider can tell)."""
        check = getattr(self.provider, "health", None)
        if check is not None:
            await check()

    async def log_event(self, request: LogEventRequest) -> None:
        await self.provider.log_event(request)

    async def _trace_readable(self, trace: Trace) -> bool:
        try:
            root = await self.provider.get_span(trace.trace_id, trace.root_span_id)
        except NotFoundError:
            return False
        return self._readable(root)

    async def query_traces(self, request: QueryTracesRequest) -> QueryTracesResponse:
        limit = 100 if request.limit is None else request.limit
        offset = request.offset or 0
        if not self._checked():
            traces = await self.provider.query_traces(
                request.attribute_filters, limit, offset, request.order_by
            )
            return QueryTracesResponse(data=traces)
        readable: list[Trace] = []
        scanned = 0
        while len(readable) < offset + limit and scanned < TRACE_SCAN_LIMIT:
            batch = await self.provider.query_traces(
                request.attribute_filters, 200, scanned, request.order_by
            )
            if not batch:
                break
            scanned += len(batch)
            readable.extend([t for t in batch if await self._trace_readable(t)])
        return QueryTracesResponse(data=readable[offset : offset + limit])

    async def get_trace(self, trace_id: str) -> Trace:
        trace: Trace = await self.provider.get_trace(trace_id)
        if self._checked() and not await self._trace_readable(trace):
            raise NotFoundError(f"trace {trace_id!r} not found", field="trace_id")
        return trace

    async def get_span(self, trace_id: str, span_id: str) -> Span:
        span: Span = await self.provider.get_span(trace_id, span_id)
        if self._checked() and not self._readable(span):
            raise NotFoundError(
                f"span {span_id!r} of trace {trace_id!r} not found", field="span_id"
            )
        return span

    async def get_span_tree(
        self, span_id: str, request: GetSpanTreeRequest
    ) -> QuerySpanTreeResponse:
        asked = request.attributes_to_return
        checked = self._checked()
        tree = await self.provider.get_span_tree(
            span_id, self._with_caller(asked) if checked else asked, request.max_depth
        )
        if checked:
            root = tree.get(span_id)
            if root is None or not self._readable(root):
                raise NotFoundError(f"span {span_id!r} not found", field="span_id")
            tree = {k: self._as_asked(s, asked) for k, s in tree.items() if self._readable(s)}
        return QuerySpanTreeResponse(data=tree)

    async def _query_spans(
        self, filters: Any, attributes: list[str] | None, max_depth: int | None
    ) -> list[Any]:
        if not self._checked():
            spans: list[Any] = await self.provider.query_spans(filters, attributes, max_depth)
            return spans
        spans = await self.provider.query_spans(filters, self._with_caller(attributes), max_depth)
        return await self._visible_spans(spans, attributes)

    async def query_spans(self, request: QuerySpansRequest) -> QuerySpansResponse:
        spans = await self._query_spans(
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
        spans = await self._query_spans(
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
    return TelemetryRouter(
        guarded[providers[0].provider_id], deps.get(Api.datasetio), access_policy(stack)
    )
