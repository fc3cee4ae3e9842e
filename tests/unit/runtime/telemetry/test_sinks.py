"""Telemetry sinks: OTLP export (HTTP and gRPC) to a receiver on loopback that decodes the
protobuf, the console sink, structured logs with trace ids, and sinks that are down never
failing a request."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime import telemetry
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.telemetry.config import TelemetryConfig
from stackray.runtime.telemetry.logs import JsonFormatter, TraceIdsFilter
from tests.unit.runtime.telemetry.test_tracing import ECHO, ECHO_MODELS, stack_config
from tests.unit.support.remote_servers import closed_port_url


@pytest.fixture(autouse=True)
def _telemetry_off():
    yield
    telemetry.shutdown()


class OtlpHttpReceiver:
    """An OTLP/HTTP collector on 127.0.0.1 keeping the decoded export requests."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceRequest,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        self.traces: list[Any] = []
        self.metrics: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    msg: Any = ExportTraceServiceRequest()
                    msg.ParseFromString(body)
                    receiver.traces.append(msg)
                elif self.path == "/v1/metrics":
                    msg = ExportMetricsServiceRequest()
                    msg.ParseFromString(body)
                    receiver.metrics.append(msg)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self) -> list[tuple[Any, Any]]:
        """(resource, span) pairs received."""
        return [
            (rs.resource, span)
            for req in self.traces
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def metric_names(self) -> set[str]:
        return {
            m.name
            for req in self.metrics
            for rm in req.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value or v.int_value or v.bool_value or v.double_value
    return out


def run_chat(raw: dict) -> Any:
    stack = parse_config(raw)
    telemetry.configure(stack, "local")
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as c:
        return c.post(
            "/v1/inference/chat-completion",
            json={"model_id": "m", "messages": [{"role": "user", "content": "hi"}]},
        )


def test_otlp_http_export_reaches_a_collector(tmp_path):
    receiver = OtlpHttpReceiver()
    try:
        raw = stack_config(
            tmp_path,
            ECHO,
            ECHO_MODELS,
            sinks=["otlp"],
            otel_exporter_otlp_endpoint=receiver.url,
            service_name="stackray-test",
        )
        r = run_chat(raw)
        assert r.status_code == 200
        telemetry.shutdown()  # flushes spans and the last metric export
        spans = receiver.spans()
        names = {span.name for _, span in spans}
        assert names == {
            "POST /v1/inference/chat-completion",
            "inference.chat_completion",
            "provider.echo.chat_completion",
        }
        assert {span.trace_id.hex() for _, span in spans} == {r.headers["x-trace-id"]}
        resource = {kv.key: kv.value.string_value for kv in spans[0][0].attributes}
        assert resource["service.name"] == "stackray-test"
        by_name = {span.name: span for _, span in spans}
        # The inference router runs in the gateway's process: its span is the gateway's.
        assert attrs(by_name["inference.chat_completion"])["stackray.deployment"] == "local"
        assert (
            by_name["inference.chat_completion"].parent_span_id
            == by_name["POST /v1/inference/chat-completion"].span_id
        )
        assert {"stackray_requests", "stackray_request_latency_seconds"} <= receiver.metric_names()
        # Without the sqlite sink nothing is written locally, and the API says so.
        assert not (tmp_path / "telemetry").exists()
    finally:
        receiver.close()


def test_otlp_grpc_export_reaches_a_collector(tmp_path):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received: list[Any] = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        raw = stack_config(
            tmp_path,
            ECHO,
            ECHO_MODELS,
            sinks=["otlp"],
            otel_exporter_otlp_endpoint=f"127.0.0.1:{port}",
            otel_exporter_otlp_protocol="grpc",
        )
        assert run_chat(raw).status_code == 200
        telemetry.force_flush()
        names = {
            span.name
            for req in received
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }
        assert "inference.chat_completion" in names and len(names) == 3
    finally:
        telemetry.shutdown()
        server.stop(0)


def test_sinks_down_never_fail_a_request(tmp_path, caplog):
    """The collector is unreachable and the SQLite file cannot be created: requests are
    answered as fast as ever and the replica logs a warning."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    raw = stack_config(
        tmp_path,
        ECHO,
        ECHO_MODELS,
        sinks=["sqlite", "otlp"],
        sqlite_db_path=str(blocker / "spans.db"),
        otel_exporter_otlp_endpoint=closed_port_url(),
    )
    with caplog.at_level(logging.WARNING, logger="stackray.telemetry"):
        started = time.perf_counter()
        r = run_chat(raw)
        took = time.perf_counter() - started
    assert r.status_code == 200 and r.json()["completion_message"]["content"] == "echo: hi"
    assert r.headers["x-trace-id"]
    assert took < 10
    assert "sqlite sink unavailable" in caplog.text
    telemetry.shutdown()  # the OTLP export fails in the background, not here


def test_store_down_makes_queries_503_not_the_stack(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    raw = stack_config(tmp_path, ECHO, ECHO_MODELS, sqlite_db_path=str(blocker / "spans.db"))
    stack = parse_config(raw)
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as c:
        r = c.post("/v1/telemetry/traces", json={})
    assert r.status_code == 503 and "cannot be opened" in r.json()["detail"]


def test_queries_without_the_sqlite_sink_say_so(tmp_path):
    stack = parse_config(stack_config(tmp_path, ECHO, ECHO_MODELS, sinks=["console"]))
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as c:
        r = c.post("/v1/telemetry/traces", json={})
    assert r.status_code == 400 and "add 'sqlite'" in r.json()["detail"]


def test_sqlite_store_failing_after_start_drops_spans_quietly(tmp_path, caplog):
    stack = parse_config(stack_config(tmp_path, ECHO, ECHO_MODELS))
    telemetry.configure(stack, "local")
    store = telemetry.tracing._state.store
    assert store is not None

    def broken(rows: Any) -> None:
        raise OSError("disk full")

    store.write_spans = broken  # type: ignore[method-assign]
    routers = asyncio.run(build_local_stack(stack))
    with caplog.at_level(logging.WARNING, logger="stackray.telemetry"):
        with TestClient(create_gateway_app(stack, routers)) as c:
            for _ in range(3):
                r = c.post(
                    "/v1/inference/chat-completion",
                    json={"model_id": "m", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert r.status_code == 200
        telemetry.force_flush()
    assert "disk full" in caplog.text
    assert caplog.text.count("disk full") == 1  # throttled


def test_console_sink_prints_spans(tmp_path, capfd):
    raw = stack_config(tmp_path, ECHO, ECHO_MODELS, sinks=["console"])
    assert run_chat(raw).status_code == 200
    telemetry.shutdown()
    out = capfd.readouterr().out
    assert '"name": "inference.chat_completion"' in out
    assert '"stackray.deployment": "local"' in out


def test_json_logs_carry_trace_and_span_ids():
    from opentelemetry.sdk.trace import TracerProvider

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceIdsFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("stackray.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        tracer = TracerProvider().get_tracer("t")
        with tracer.start_as_current_span("work") as span:
            logger.info("inside %s", "a span")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    sc = span.get_span_context()
    assert inside["message"] == "inside a span"
    assert inside["trace_id"] == f"{sc.trace_id:032x}"
    assert inside["span_id"] == f"{sc.span_id:016x}"
    assert outside["trace_id"] is None


def test_configure_logging_sets_one_stackray_handler(tmp_path):
    from stackray.runtime.telemetry.logs import configure_logging

    stackray_logger = logging.getLogger("stackray")
    before = list(stackray_logger.handlers)
    try:
        configure_logging(TelemetryConfig(log_format="json"))
        configure_logging(TelemetryConfig(log_format="json"))
        ours = [h for h in stackray_logger.handlers if h.get_name() == "stackray-telemetry"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
    finally:
        for h in list(stackray_logger.handlers):
            if h not in before:
                stackray_logger.removeHandler(h)
        stackray_logger.propagate = True


def test_config_rejects_unknown_sinks_and_ratios(tmp_path):
    from stackray.api.errors import ConfigError

    with pytest.raises(ConfigError, match="sinks"):
        parse_config(stack_config(tmp_path, ECHO, ECHO_MODELS, sinks=["jaeger"]))
    with pytest.raises(ConfigError, match="sampling_ratio"):
        parse_config(stack_config(tmp_path, ECHO, ECHO_MODELS, sampling_ratio=2))


@pytest.mark.parametrize(
    ("sinks", "spans_sent", "metrics_sent"),
    [
        ("otel_trace", True, False),
        ("otel_metric", False, True),
        ("otel_trace,otel_metric", True, True),
    ],
)
def test_llama_stack_0_2_12_otel_sinks_send_to_their_endpoints(
    tmp_path, sinks, spans_sent, metrics_sent
):
    receiver = OtlpHttpReceiver()
    try:
        raw = stack_config(
            tmp_path,
            ECHO,
            ECHO_MODELS,
            sinks=sinks,  # the comma-separated form of ${env.TELEMETRY_SINKS:...}
            otel_trace_endpoint=f"{receiver.url}/v1/traces",
            otel_metric_endpoint=f"{receiver.url}/v1/metrics",
            service_name="\u200b",
        )
        assert run_chat(raw).status_code == 200
        telemetry.shutdown()
        assert bool(receiver.spans()) is spans_sent
        assert bool(receiver.metric_names()) is metrics_sent
        assert not (tmp_path / "telemetry").exists()
    finally:
        receiver.close()
