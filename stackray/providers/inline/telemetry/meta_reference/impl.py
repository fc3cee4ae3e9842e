"""`inline::meta-reference` telemetry: answers the telemetry API from the SQLite store
that every replica's sqlite sink writes (`stackray.runtime.telemetry`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stackray.api.errors import BadRequestError, NotFoundError, ServiceUnavailableError
from stackray.api.telemetry import (
    LogEventRequest,
    LogSeverity,
    MetricEvent,
    MetricSeries,
    QueryCondition,
    QueryMetricsRequest,
    Span,
    SpanEndPayload,
    SpanStartPayload,
    SpanWithStatus,
    StructuredLogEvent,
    Trace,
)
from stackray.runtime.resolver import ProviderContext
from stackray.runtime.telemetry import DEPLOYMENT_ATTR, deployment_name
from stackray.runtime.telemetry.config import TelemetryConfig, TelemetrySink
from stackray.runtime.telemetry.store import MetricPoint, SpanRow, TraceStore, datetime_to_ns

logger = logging.getLogger("stackray.telemetry.events")

_LEVELS = {
    LogSeverity.verbose: logging.DEBUG,
    LogSeverity.debug: logging.DEBUG,
    LogSeverity.info: logging.INFO,
    LogSeverity.warn: logging.WARNING,
    LogSeverity.error: logging.ERROR,
    LogSeverity.critical: logging.CRITICAL,
}


class MetaReferenceTelemetryImpl:
    def __init__(
        self, config: TelemetryConfig, deps: dict[Any, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.store: TraceStore | None = None
        self._store_error: str | None = None
        if TelemetrySink.sqlite in config.sinks:
            path = config.db_path(context.stack.data_dir)
            try:
                self.store = TraceStore(path)
            except Exception as exc:  # the API answers 503; the stack still starts
                self._store_error = f"the span store {path} cannot be opened: {exc}"
                logging.getLogger("stackray.telemetry").warning("telemetry: %s", self._store_error)

    def _store(self) -> TraceStore:
        if self.store is None:
            if self._store_error:
                raise ServiceUnavailableError(self._store_error)
            raise BadRequestError(
                "spans are not stored by this stack: add 'sqlite' to the telemetry provider's "
                "sinks to query them through the API"
            )
        return self.store

    async def log_event(self, request: LogEventRequest) -> None:
        store = self._store()
        event = request.event
        ts = datetime_to_ns(event.timestamp)
        attrs = dict(event.attributes or {})
        if isinstance(event, MetricEvent):
            labels = {k: str(v) for k, v in attrs.items() if v is not None}
            point = MetricPoint(event.metric, ts / 1e9, float(event.value), labels)
            await asyncio.to_thread(store.write_metric_points, [point])
        elif isinstance(event, StructuredLogEvent):
            payload = event.payload
            if isinstance(payload, SpanStartPayload):
                attrs.setdefault(DEPLOYMENT_ATTR, deployment_name())
                row = SpanRow(
                    span_id=event.span_id,
                    trace_id=event.trace_id,
                    parent_span_id=payload.parent_span_id,
                    name=payload.name,
                    start_ns=ts,
                    end_ns=None,
                    status=None,
                    attributes=attrs,
                )
                await asyncio.to_thread(store.write_spans, [row])
            elif isinstance(payload, SpanEndPayload):
                found = await asyncio.to_thread(
                    store.end_span, event.span_id, ts, payload.status.value
                )
                if not found:
                    raise NotFoundError(
                        f"span {event.span_id!r} was never started", field="event.span_id"
                    )
        else:
            logger.log(
                _LEVELS[event.severity],
                "%s",
                event.message,
                extra={"event_trace_id": event.trace_id, "event_span_id": event.span_id},
            )
            await asyncio.to_thread(
                store.write_event,
                event.trace_id,
                event.span_id,
                ts,
                event.severity.value,
                event.message,
                attrs,
                request.ttl_seconds,
            )

    async def query_traces(
        self,
        filters: list[QueryCondition] | None,
        limit: int,
        offset: int,
        order_by: list[str] | None,
    ) -> list[Trace]:
        return await asyncio.to_thread(self._store().query_traces, filters, limit, offset, order_by)

    async def get_trace(self, trace_id: str) -> Trace:
        return await asyncio.to_thread(self._store().get_trace, trace_id)

    async def get_span(self, trace_id: str, span_id: str) -> Span:
        return await asyncio.to_thread(self._store().get_span, trace_id, span_id)

    async def get_span_tree(
        self, span_id: str, attributes_to_return: list[str] | None, max_depth: int | None
    ) -> dict[str, SpanWithStatus]:
        return await asyncio.to_thread(
            self._store().span_tree, span_id, attributes_to_return, max_depth
        )

    async def query_spans(
        self, filters: list[QueryCondition], attributes_to_return: list[str], max_depth: int | None
    ) -> list[Span]:
        return await asyncio.to_thread(
            self._store().query_spans, filters, attributes_to_return, max_depth
        )

    async def query_metrics(
        self, metric_name: str, request: QueryMetricsRequest
    ) -> list[MetricSeries]:
        return await asyncio.to_thread(
            self._store().query_metrics,
            metric_name,
            request.start_time,
            request.end_time,
            request.granularity,
            request.query_type,
            request.label_matchers,
        )
