"""Routes of the telemetry API."""

from __future__ import annotations

from fastapi.responses import Response

from stackray.api.datatypes import Api
from stackray.api.telemetry import (
    GetSpanTreeRequest,
    LogEventRequest,
    QueryMetricsRequest,
    QuerySpansRequest,
    QueryTracesRequest,
    SaveSpansToDatasetRequest,
)
from stackray.deployments.routes import Routes

TELEMETRY = Api.telemetry.value


def register(routes: Routes) -> None:
    call, json = routes.call, routes.json

    async def log_event(body: LogEventRequest) -> Response:
        await call(TELEMETRY, "log_event", body)
        return json(None)

    async def query_traces(body: QueryTracesRequest) -> Response:
        return json(await call(TELEMETRY, "query_traces", body))

    async def get_trace(trace_id: str) -> Response:
        return json(await call(TELEMETRY, "get_trace", trace_id))

    async def get_span(trace_id: str, span_id: str) -> Response:
        return json(await call(TELEMETRY, "get_span", trace_id, span_id))

    async def get_span_tree(span_id: str, body: GetSpanTreeRequest) -> Response:
        return json(await call(TELEMETRY, "get_span_tree", span_id, body))

    async def query_spans(body: QuerySpansRequest) -> Response:
        return json(await call(TELEMETRY, "query_spans", body))

    async def save_spans_to_dataset(body: SaveSpansToDatasetRequest) -> Response:
        await call(TELEMETRY, "save_spans_to_dataset", body)
        return json(None)

    async def query_metrics(metric_name: str, body: QueryMetricsRequest) -> Response:
        return json(await call(TELEMETRY, "query_metrics", metric_name, body))

    api = Api.telemetry
    routes.add(api, "POST", "/v1/telemetry/events", log_event)
    routes.add(api, "POST", "/v1/telemetry/traces", query_traces)
    routes.add(api, "GET", "/v1/telemetry/traces/{trace_id}", get_trace)
    routes.add(api, "GET", "/v1/telemetry/traces/{trace_id}/spans/{span_id}", get_span)
    routes.add(api, "POST", "/v1/telemetry/spans/{span_id}/tree", get_span_tree)
    routes.add(api, "POST", "/v1/telemetry/spans", query_spans)
    routes.add(api, "POST", "/v1/telemetry/spans/export", save_spans_to_dataset)
    routes.add(api, "POST", "/v1/telemetry/metrics/{metric_name}", query_metrics)
