"""Where finished spans and metric points go: the SQLite store, the console, an OTLP
collector. Everything here runs on background threads; a sink that fails logs a warning
(at most once a minute) and drops what it could not write: never a request's problem."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from stackray.runtime.telemetry.store import MetricPoint, SpanRow, TraceStore

logger = logging.getLogger("stackray.telemetry")


class _Throttle:
    """Log a sink failure at most once per `period_s`."""

    def __init__(self, period_s: float = 60.0) -> None:
        self.period_s = period_s
        self._last = 0.0

    def warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last >= self.period_s:
            self._last = now
            logger.warning("telemetry: %s failed (dropped): %s: %s", what, type(exc).__name__, exc)


def span_row(span: ReadableSpan) -> SpanRow:
    ctx = span.context
    parent = span.parent
    status = span.status.status_code
    return SpanRow(
        span_id=format(ctx.span_id, "016x"),
        trace_id=format(ctx.trace_id, "032x"),
        parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time,
        status="error" if status == StatusCode.ERROR else "ok",
        attributes=dict(span.attributes or {}),
    )


class SqliteSpanExporter(SpanExporter):
    """Writes spans into a `TraceStore` (called by a BatchSpanProcessor's thread)."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self._throttle = _Throttle()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.write_spans(span_row(s) for s in spans)
        except Exception as exc:
            self._throttle.warn(f"writing {len(spans)} spans to {self.store.path}", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.store.close()


class MetricPointWriter:
    """Takes metric points off the request path: `add` only appends to a deque (no lock,
    no thread wake-up); a daemon thread wakes every `interval_s`, takes what is there and
    hands it to `store` (when given) and to `apply` (Ray and OpenTelemetry instruments).
    Bounded: when the sinks are down and `max_queue` points wait, the oldest are dropped."""

    def __init__(
        self,
        store: TraceStore | None,
        apply: Callable[[list[MetricPoint]], None] | None = None,
        interval_s: float = 0.5,
        max_queue: int = 100_000,
    ) -> None:
        self.store = store
        self.apply = apply
        self.interval_s = interval_s
        self._points: collections.deque[MetricPoint] = collections.deque(maxlen=max_queue)
        self._throttle = _Throttle()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="stackray-metric-writer", daemon=True
        )
        self._thread.start()

    def add(self, point: MetricPoint) -> None:
        self._points.append(point)

    def _take(self) -> list[MetricPoint]:
        batch = []
        points = self._points
        while points:
            try:
                batch.append(points.popleft())
            except IndexError:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._write(self._take())
        self._write(self._take())

    def _write(self, batch: list[MetricPoint]) -> None:
        if not batch:
            return
        if self.apply is not None:
            try:
                self.apply(batch)
            except Exception as exc:
                self._throttle.warn(f"recording {len(batch)} metric points", exc)
        if self.store is not None:
            try:
                self.store.write_metric_points(batch)
            except Exception as exc:
                self._throttle.warn(f"writing {len(batch)} metric points to {self.store.path}", exc)

    def flush_and_stop(self, timeout: float = 5.0) -> None:
        """Write what waits, then stop the thread."""
        self._stop.set()
        self._thread.join(timeout)


def otlp_span_exporter(endpoint: str | None, protocol: str) -> Any:
    """An OTLP span exporter (imported only when the sink is configured)."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=endpoint, insecure=_insecure(endpoint))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=_http_url(endpoint, "traces"), timeout=5)


def otlp_metric_exporter(endpoint: str | None, protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(endpoint=endpoint, insecure=_insecure(endpoint))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=_http_url(endpoint, "metrics"), timeout=5)


def _http_url(endpoint: str | None, signal: str) -> str | None:
    if endpoint is None:
        return None  # the exporter's own default / OTEL_EXPORTER_OTLP_* environment
    base = endpoint.rstrip("/")
    if base.endswith(f"/v1/{signal}"):
        return base
    return f"{base}/v1/{signal}"


def _insecure(endpoint: str | None) -> bool:
    return not (endpoint or "").startswith("https://")
