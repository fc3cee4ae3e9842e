"""Tracing in every replica: one OpenTelemetry `TracerProvider` per process, configured
from the stack's telemetry provider, and the helpers the gateway, the deployments and the
providers call.

The trace context crosses `DeploymentHandle` calls inside the `RequestContext` that goes
with every call (`traceparent` / `tracestate`, W3C format): the caller puts its current
span there (`outgoing`), the callee's `Dispatcher` starts a child span from it
(`start_call_span`). With tracing off every helper returns at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from stackray.runtime.request_context import RequestContext, User, current_user
from stackray.runtime.telemetry.config import TelemetryConfig, TelemetrySink, telemetry_config

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig
    from stackray.runtime.telemetry.metrics import MetricsRecorder
    from stackray.runtime.telemetry.store import TraceStore

logger = logging.getLogger("stackray.telemetry")

DEPLOYMENT_ATTR = "stackray.deployment"
REPLICA_ATTR = "stackray.replica"
PRINCIPAL_ATTR = "stackray.principal"
PRINCIPAL_ATTRIBUTES_ATTR = "stackray.principal_attributes"

# Provider methods that serve a model: their calls are counted in the metrics.
MODEL_METHODS = frozenset(
    {
        "chat_completion",
        "completion",
        "embeddings",
        "openai_chat_completion",
        "openai_completion",
        "openai_embeddings",
        "chat_completion_stream",
        "completion_stream",
        "openai_chat_completion_stream",
        "openai_completion_stream",
    }
)

_model_var: ContextVar[str | None] = ContextVar("stackray_telemetry_model", default=None)
_NULL = contextlib.nullcontext()


@dataclasses.dataclass
class _State:
    config: TelemetryConfig | None = None
    key: tuple[Any, ...] | None = None
    tracer: Any = None
    provider: Any = None
    meter_provider: Any = None
    store: TraceStore | None = None
    metrics: MetricsRecorder | None = None
    deployment: str = "local"
    replica: str | None = None


_state = _State()


def serve_replica() -> tuple[str, str] | None:
    """(deployment, replica id) of the Serve replica this code runs in, if any."""
    try:
        from ray import serve

        ctx = serve.get_replica_context()
    except Exception:
        return None
    replica_id = getattr(ctx, "replica_id", None)
    unique = getattr(replica_id, "unique_id", None) or getattr(ctx, "replica_tag", None)
    return str(ctx.deployment), str(unique or "")


def configure(stack: StackConfig, deployment: str) -> None:
    """Set up this process's tracer, metrics and logs from the stack's telemetry config
    (idempotent; tracing stays off when the stack serves no telemetry API)."""
    from stackray.runtime import redaction

    redaction.install(stack)  # before anything logs: no record carries a secret
    configure_from(telemetry_config(stack), stack.data_dir, deployment)


def configure_from(config: TelemetryConfig | None, data_dir: Path, deployment: str) -> None:
    replica = serve_replica()
    _state.deployment, _state.replica = replica if replica else (deployment, None)
    if config is None:
        shutdown()
        return
    key = (config.model_dump_json(), str(config.db_path(data_dir)))
    if _state.key == key:
        return
    shutdown()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from stackray.runtime.telemetry.logs import configure_logging
    from stackray.runtime.telemetry.metrics import MetricsRecorder
    from stackray.runtime.telemetry.sinks import (
        SqliteSpanExporter,
        otlp_metric_exporter,
        otlp_span_exporter,
    )
    from stackray.runtime.telemetry.store import TraceStore

    resource = Resource.create({"service.name": config.service_name})
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sampling_ratio))
    )
    delay = config.export_interval_ms
    store = None
    sinks = set(config.sinks)
    if TelemetrySink.sqlite in sinks:
        try:
            store = TraceStore(config.db_path(data_dir))
            provider.add_span_processor(
                BatchSpanProcessor(SqliteSpanExporter(store), schedule_delay_millis=delay)
            )
        except Exception as exc:  # a broken sink must not stop the replica
            logger.warning("telemetry: sqlite sink unavailable: %s", exc)
    if TelemetrySink.console in sinks:
        provider.add_span_processor(
            BatchSpanProcessor(ConsoleSpanExporter(out=sys.stdout), schedule_delay_millis=delay)
        )
    if TelemetrySink.otlp in sinks:
        provider.add_span_processor(
            BatchSpanProcessor(
                otlp_span_exporter(
                    config.otel_exporter_otlp_endpoint, config.otel_exporter_otlp_protocol
                ),
                schedule_delay_millis=delay,
            )
        )
    if TelemetrySink.otel_trace in sinks:
        provider.add_span_processor(
            BatchSpanProcessor(
                otlp_span_exporter(config.otel_trace_endpoint, "http/protobuf"),
                schedule_delay_millis=delay,
            )
        )
    meter_provider = meter = None
    readers = []
    if sinks & {TelemetrySink.otlp, TelemetrySink.otel_metric, TelemetrySink.console}:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )

        interval = max(delay, 1000)
        if TelemetrySink.otlp in sinks:
            exporter = otlp_metric_exporter(
                config.otel_exporter_otlp_endpoint, config.otel_exporter_otlp_protocol
            )
            readers.append(PeriodicExportingMetricReader(exporter, interval))
        if TelemetrySink.otel_metric in sinks:
            exporter = otlp_metric_exporter(config.otel_metric_endpoint, "http/protobuf")
            readers.append(PeriodicExportingMetricReader(exporter, interval))
        if TelemetrySink.console in sinks:
            readers.append(
                PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stdout), interval)
            )
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        meter = meter_provider.get_meter("stackray")
    _state.config = config
    _state.key = key
    _state.provider = provider
    _state.tracer = provider.get_tracer("stackray")
    _state.meter_provider = meter_provider
    _state.store = store
    _state.metrics = MetricsRecorder(
        store, meter, use_ray=replica is not None, interval_s=delay / 1000
    )
    configure_logging(config)


def shutdown() -> None:
    """Flush and stop this process's sinks; tracing is off afterwards."""
    provider, meter_provider, recorder = _state.provider, _state.meter_provider, _state.metrics
    _state.config = _state.key = _state.tracer = _state.provider = None
    _state.meter_provider = _state.store = _state.metrics = None
    for stop in (
        getattr(provider, "shutdown", None),
        getattr(recorder, "flush_and_stop", None),  # before the meter: its last points
        getattr(meter_provider, "shutdown", None),
    ):
        if stop is not None:
            try:
                stop()
            except Exception as exc:
                logger.debug("telemetry shutdown: %s", exc)


def force_flush(timeout_ms: int = 5000) -> None:
    """Write every finished span now (tests, shutdown)."""
    if _state.provider is not None:
        _state.provider.force_flush(timeout_ms)


def enabled() -> bool:
    return _state.tracer is not None


def deployment_name() -> str:
    return _state.deployment


def metrics() -> MetricsRecorder | None:
    return _state.metrics


def _attributes(deployment: str | None, user: User | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {DEPLOYMENT_ATTR: deployment or _state.deployment}
    if _state.replica:
        attrs[REPLICA_ATTR] = _state.replica
    attrs.update(caller_attributes(user if user is not None else current_user()))
    return attrs


def caller_attributes(user: User | None) -> dict[str, str]:
    """The span attributes naming the caller a span worked for: who may read the span
    (`stackray.runtime.routers.telemetry`)."""
    if user is None:
        return {}
    return {
        PRINCIPAL_ATTR: user.principal,
        PRINCIPAL_ATTRIBUTES_ATTR: json.dumps(user.attributes, sort_keys=True),
    }


def caller_of(attributes: dict[str, Any] | None) -> User | None:
    """The caller recorded on a span by `caller_attributes` (None: no caller)."""
    if not attributes or PRINCIPAL_ATTR not in attributes:
        return None
    try:
        extra = json.loads(str(attributes.get(PRINCIPAL_ATTRIBUTES_ATTR) or "{}"))
    except ValueError:
        extra = {}
    return User(str(attributes[PRINCIPAL_ATTR]), extra if isinstance(extra, dict) else {})


def tag_caller(user: User | None) -> None:
    """Name `user` on the current span (the gateway's request span, started before the
    request was authenticated)."""
    if user is None or _state.tracer is None:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({**caller_attributes(user), "enduser.id": user.principal})


# ---- context across deployments ------------------------------------------------------------


def traceparent_of(span_context: SpanContext) -> str:
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def parse_traceparent(header: str | None, tracestate: str | None = None) -> SpanContext | None:
    """The span context in a W3C `traceparent` header; None when absent or malformed."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    if len(parts[1]) != 32 or len(parts[2]) != 16 or trace_id == 0 or span_id == 0:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags), trace_state=state
    )


def outgoing(ctx: RequestContext | None) -> RequestContext | None:
    """`ctx` for a call to another deployment: carrying the current span as the parent of
    the callee's, and the time it is sent."""
    if _state.tracer is None:
        return ctx
    sc = trace.get_current_span().get_span_context()
    base = ctx if ctx is not None else RequestContext()
    if not sc.is_valid:
        return dataclasses.replace(base, sent_at=time.time())
    return dataclasses.replace(
        base,
        traceparent=traceparent_of(sc),
        tracestate=sc.trace_state.to_header() if sc.trace_state else None,
        sent_at=time.time(),
    )


def trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, for outgoing HTTP."""
    if _state.tracer is None:
        return {}
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return {}
    headers = {"traceparent": traceparent_of(sc)}
    if sc.trace_state:
        headers["tracestate"] = sc.trace_state.to_header()
    return headers


def start_call_span(
    ctx: RequestContext | None, deployment: str | None, method: str, *, colocated: bool = False
) -> Any:
    """The span of a deployment call, child of the caller's (None when not traced).

    `colocated`: `deployment`'s code runs in this process (the inference router in the
    gateway): the span keeps `deployment` in its name, its attributes name this process's
    deployment, and no queue time is recorded (there is no queue)."""
    if _state.tracer is None or ctx is None:
        return None
    if ctx.sent_at is not None and _state.metrics is not None and not colocated:
        _state.metrics.record(
            "queue_time_seconds",
            max(0.0, time.time() - ctx.sent_at),
            {"deployment": deployment or _state.deployment},
        )
    parent = parse_traceparent(ctx.traceparent, ctx.tracestate)
    if parent is None:
        return None
    name = f"{deployment or _state.deployment}.{method}"
    return _state.tracer.start_span(
        name,
        context=trace.set_span_in_context(NonRecordingSpan(parent)),
        kind=SpanKind.INTERNAL if colocated else SpanKind.SERVER,
        attributes=_attributes(None if colocated else deployment, ctx.user),
    )


class _Current:
    """Makes a span current within a `with` block without ending it (a lighter
    `trace.use_span`: this runs several times per request)."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any) -> None:
        self.span = span

    def __enter__(self) -> Any:
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self.token)


def activate(span: Any) -> Any:
    """A context manager making `span` current (without ending it); a no-op for None."""
    if span is None:
        return _NULL
    return _Current(span)


def fail(span: Any, exc: BaseException) -> None:
    if span is None or not span.is_recording():
        return
    from stackray.runtime.errors import unwrap

    err = unwrap(exc)
    status_code = getattr(err, "status_code", 500)
    span.set_attribute("error.type", type(err).__name__)
    if isinstance(status_code, int):
        span.set_attribute("stackray.status_code", status_code)
    from stackray.runtime.redaction import redact_text

    span.set_status(Status(StatusCode.ERROR, redact_text(f"{type(err).__name__}: {err}")[:500]))


def end(span: Any) -> None:
    if span is not None:
        span.end()


# ---- providers ----------------------------------------------------------------------------


def note_model(model_id: str) -> None:
    """The model a router resolved for this request: labels the provider call's metrics."""
    if _state.tracer is not None:
        _model_var.set(model_id)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("stackray.model_id", model_id)


class ProviderCall:
    """One traced and measured provider call (see `provider_call`)."""

    __slots__ = ("span", "labels", "started", "ttft", "tokens", "measured")

    def __init__(self, span: Any, labels: dict[str, str], measured: bool) -> None:
        self.span = span
        self.labels = labels
        self.measured = measured
        self.started = time.perf_counter()
        self.ttft: float | None = None
        self.tokens: tuple[int, int] | None = None

    def activate(self) -> Any:
        return activate(self.span)

    def chunk(self, item: Any) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started
        if self.measured and (getattr(item, "usage", None) or getattr(item, "metrics", None)):
            from stackray.runtime.telemetry.metrics import token_counts

            self.tokens = token_counts(item) or self.tokens

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        latency = time.perf_counter() - self.started
        if self.measured and result is not None:
            from stackray.runtime.telemetry.metrics import token_counts

            self.tokens = token_counts(result) or self.tokens
        span = self.span
        if span is not None:
            if error is not None:
                fail(span, error)
            if self.tokens is not None and span.is_recording():
                span.set_attribute("llm.prompt_tokens", self.tokens[0])
                span.set_attribute("llm.completion_tokens", self.tokens[1])
            span.end()
        recorder = _state.metrics
        if self.measured and recorder is not None:
            try:
                recorder.provider_call(
                    self.labels, latency, error is not None, self.ttft, self.tokens
                )
            except Exception as exc:
                logger.debug("telemetry metrics: %s", exc)


def provider_call(provider_id: str, method: str, args: tuple[Any, ...]) -> ProviderCall | None:
    """Start tracing and measuring a call of `provider_id`'s `method` (None when
    telemetry is off). The span is a child of the current one, only inside a traced
    request; model methods are measured always."""
    if _state.tracer is None:
        return None
    measured = method in MODEL_METHODS
    model = _model_var.get()
    if model is None and args:
        model = getattr(args[0], "model_id", None) or getattr(args[0], "model", None)
    labels = {"model_id": str(model or ""), "provider_id": provider_id}
    span = None
    if trace.get_current_span().get_span_context().is_valid:
        attrs = _attributes(None)
        attrs["stackray.provider_id"] = provider_id
        if model:
            attrs["stackray.model_id"] = str(model)
        span = _state.tracer.start_span(
            f"provider.{provider_id}.{method}", kind=SpanKind.CLIENT, attributes=attrs
        )
    if span is None and not measured:
        return None
    return ProviderCall(span, labels, measured)


# ---- gateway --------------------------------------------------------------------------------


class TracingMiddleware:
    """Pure ASGI middleware of the gateway: one SERVER span per HTTP request, child of the
    client's `traceparent` when it sends one; it ends when the response (a whole event
    stream included) has been sent. The response carries the trace id in
    ``X-Trace-Id``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if _state.tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traceparent = tracestate = None
        for name, value in scope.get("headers", ()):
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")
        parent = parse_traceparent(traceparent, tracestate)
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else None
        method = scope.get("method", "")
        path = scope.get("path", "")
        attrs = _attributes(None)
        attrs.update({"http.request.method": method, "url.path": path})
        span = _state.tracer.start_span(
            f"{method} {path}", context=context, kind=SpanKind.SERVER, attributes=attrs
        )
        sc = span.get_span_context()
        trace_header = (b"x-trace-id", f"{sc.trace_id:032x}".encode())
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), trace_header]
            await send(message)

        try:
            with _Current(span):
                await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            fail(span, exc)
            raise
        finally:
            if span.is_recording():
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                user = scope.get("user")
                user_id = getattr(user, "identity", None) or getattr(user, "username", None)
                if user_id:
                    span.set_attribute("enduser.id", str(user_id))
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            span.end()
