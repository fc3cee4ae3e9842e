"""The Telemetry API: traces and spans recorded by every deployment, logged events, and
metric series (Llama Stack 0.2.12 contract, field for field)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field

from stackray.api.common import ApiModel, JsonValue
from stackray.api.datatypes import Api
from stackray.api.routes import Route

# Event attributes are scalars only (the contract's oneOf string/integer/number/boolean/null).
Scalar = str | int | float | bool | None


class SpanStatus(str, Enum):
    ok = "ok"
    error = "error"


class Span(ApiModel):
    """One timed operation of a trace; `attributes` keys are flat dotted names
    (``stackray.deployment``, ``http.route`` ...)."""

    span_id: str
    trace_id: str
    parent_span_id: str | None = None
    name: str
    start_time: datetime
    end_time: datetime | None = None
    attributes: dict[str, JsonValue] | None = None


class SpanWithStatus(Span):
    status: SpanStatus | None = None


class Trace(ApiModel):
    """A trace: all spans of one request; `root_span_id` is the first span stackray saw."""

    trace_id: str
    root_span_id: str
    start_time: datetime
    end_time: datetime | None = None


class QueryConditionOp(str, Enum):
    eq = "eq"
    ne = "ne"
    gt = "gt"
    lt = "lt"


class QueryCondition(ApiModel):
    """``key`` is an attribute name (dotted names allowed) or a span field (``name``,
    ``trace_id``, ``span_id``, ``parent_span_id``, ``status``)."""

    key: str
    op: QueryConditionOp
    value: JsonValue


class QueryTracesRequest(ApiModel):
    attribute_filters: list[QueryCondition] | None = None
    limit: int | None = Field(default=100, ge=1)
    offset: int | None = Field(default=0, ge=0)
    order_by: list[str] | None = None


class QueryTracesResponse(ApiModel):
    data: list[Trace]


class QuerySpansRequest(ApiModel):
    attribute_filters: list[QueryCondition]
    attributes_to_return: list[str]
    max_depth: int | None = Field(default=None, ge=0)


class QuerySpansResponse(ApiModel):
    data: list[Span]


class GetSpanTreeRequest(ApiModel):
    attributes_to_return: list[str] | None = None
    max_depth: int | None = Field(default=None, ge=0)


class QuerySpanTreeResponse(ApiModel):
    data: dict[str, SpanWithStatus]


class SaveSpansToDatasetRequest(ApiModel):
    attribute_filters: list[QueryCondition]
    attributes_to_save: list[str]
    dataset_id: str
    max_depth: int | None = Field(default=None, ge=0)


# ---- events ---------------------------------------------------------------------------


class LogSeverity(str, Enum):
    verbose = "verbose"
    debug = "debug"
    info = "info"
    warn = "warn"
    error = "error"
    critical = "critical"


class _EventBase(ApiModel):
    trace_id: str
    span_id: str
    timestamp: datetime
    attributes: dict[str, Scalar] | None = None


class UnstructuredLogEvent(_EventBase):
    type: Literal["unstructured_log"] = "unstructured_log"
    message: str
    severity: LogSeverity


class MetricEvent(_EventBase):
    type: Literal["metric"] = "metric"
    metric: str
    value: int | float
    unit: str


class SpanStartPayload(ApiModel):
    type: Literal["span_start"] = "span_start"
    name: str
    parent_span_id: str | None = None


class SpanEndPayload(ApiModel):
    type: Literal["span_end"] = "span_end"
    status: SpanStatus


StructuredLogPayload = Annotated[SpanStartPayload | SpanEndPayload, Field(discriminator="type")]


class StructuredLogEvent(_EventBase):
    type: Literal["structured_log"] = "structured_log"
    payload: StructuredLogPayload


Event = Annotated[
    UnstructuredLogEvent | MetricEvent | StructuredLogEvent, Field(discriminator="type")
]


class LogEventRequest(ApiModel):
    event: Event
    # At most ten years: the store keeps expiry times as 64-bit integers.
    ttl_seconds: int = Field(ge=0, le=10 * 365 * 24 * 3600)


# ---- metrics --------------------------------------------------------------------------


class MetricLabelOperator(str, Enum):
    eq = "="
    ne = "!="
    regex = "=~"
    not_regex = "!~"


class MetricLabelMatcher(ApiModel):
    name: str
    value: str
    operator: MetricLabelOperator = MetricLabelOperator.eq


class QueryMetricsRequest(ApiModel):
    start_time: int = Field(description="Unix seconds.")
    end_time: int | None = Field(default=None, description="Unix seconds; now if unset.")
    granularity: str | None = Field(
        default=None, description="Bucket width: '30s', '1m', '5m', '1h', '1d' ..."
    )
    query_type: Literal["range", "instant"]
    label_matchers: list[MetricLabelMatcher] | None = None


class MetricLabel(ApiModel):
    name: str
    value: str


class MetricDataPoint(ApiModel):
    timestamp: int
    value: float


class MetricSeries(ApiModel):
    metric: str
    labels: list[MetricLabel]
    values: list[MetricDataPoint]


class QueryMetricsResponse(ApiModel):
    data: list[MetricSeries]


ROUTES = (
    Route(
        "POST", "/v1/telemetry/events", Api.telemetry, "log_event", body=LogEventRequest, empty=True
    ),
    Route(
        "POST",
        "/v1/telemetry/traces",
        Api.telemetry,
        "query_traces",
        body=QueryTracesRequest,
        returns=QueryTracesResponse,
    ),
    Route("GET", "/v1/telemetry/traces/{trace_id}", Api.telemetry, "get_trace", returns=Trace),
    Route(
        "GET",
        "/v1/telemetry/traces/{trace_id}/spans/{span_id}",
        Api.telemetry,
        "get_span",
        returns=Span,
    ),
    Route(
        "POST",
        "/v1/telemetry/spans/{span_id}/tree",
        Api.telemetry,
        "get_span_tree",
        body=GetSpanTreeRequest,
        returns=QuerySpanTreeResponse,
    ),
    Route(
        "POST",
        "/v1/telemetry/spans",
        Api.telemetry,
        "query_spans",
        body=QuerySpansRequest,
        returns=QuerySpansResponse,
    ),
    Route(
        "POST",
        "/v1/telemetry/spans/export",
        Api.telemetry,
        "save_spans_to_dataset",
        body=SaveSpansToDatasetRequest,
        empty=True,
    ),
    Route(
        "POST",
        "/v1/telemetry/metrics/{metric_name}",
        Api.telemetry,
        "query_metrics",
        body=QueryMetricsRequest,
        returns=QueryMetricsResponse,
    ),
)
