"""Telemetry through the real Serve stack and the real `llama-stack-client`: one trace per
request across the gateway, the inference router (in the gateway replica) and
model-server replicas, queried back through the client's telemetry calls; token metrics of the requests just made."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from tests.integration.conftest import MODEL

DEADLINE_S = 30.0


def eventually(fetch: Callable[[], Any], ok: Callable[[Any], bool]) -> Any:
    """Spans and metric points are written in batches off the request path: poll."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            value = fetch()
            if ok(value):
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not there after {DEADLINE_S}s: {value!r}")
        time.sleep(0.3)


def test_chat_completion_is_one_trace_across_deployments(stack):
    client = stack.client()
    trace_id = os.urandom(16).hex()
    traceparent = f"00-{trace_id}-{os.urandom(8).hex()}-01"
    response = client.inference.chat_completion(
        model_id=MODEL,
        messages=[{"role": "user", "content": "Say hi"}],
        sampling_params={"max_tokens": 4},
        extra_headers={"traceparent": traceparent},
    )
    assert response.completion_message.content is not None

    def tree_of_trace() -> Any:
        # Each process writes its spans in its own batches: until the gateway's arrive, a
        # model server's span can look like the root. Ask for the trace's root each time.
        root = client.telemetry.get_trace(trace_id).root_span_id
        return client.telemetry.get_span_tree(
            span_id=root,
            attributes_to_return=["stackray.deployment", "stackray.replica", "stackray.model_id"],
        )

    tree = eventually(tree_of_trace, lambda t: len(t) >= 4 and all(s.end_time for s in t.values()))
    trace = client.telemetry.get_trace(trace_id)
    spans = list(tree.values())
    assert {s.trace_id for s in spans} == {trace_id}
    deployments = {s.attributes["stackray.deployment"] for s in spans}
    assert {"gateway", "model-transformers"} <= deployments
    # The inference router's work runs in the gateway replica: a span named after the API.
    router_span = next(s for s in spans if s.name == "inference.chat_completion")
    assert router_span.attributes["stackray.deployment"] == "gateway"
    assert all(s.attributes.get("stackray.replica") for s in spans)
    names = {s.name for s in spans}
    assert "POST /v1/inference/chat-completion" in names
    assert "inference.chat_completion" in names
    assert "model-transformers.chat_completion" in names
    by_id = {s.span_id: s for s in spans}
    for s in spans:
        if s.span_id != trace.root_span_id:
            assert s.parent_span_id in by_id, s.name
    provider = next(s for s in spans if s.name == "provider.transformers.chat_completion")
    assert provider.attributes["stackray.model_id"] == MODEL
    assert provider.attributes["stackray.deployment"] == "gateway"
    # The model server's span is a child of the provider span, in the same trace.
    model_span = next(s for s in spans if s.name == "model-transformers.chat_completion")
    assert model_span.parent_span_id == provider.span_id

    root = client.telemetry.get_span(trace_id=trace_id, span_id=trace.root_span_id)
    assert root.attributes["stackray.deployment"] == "gateway"

    found = client.telemetry.query_traces(
        attribute_filters=[
            {"key": "stackray.deployment", "op": "eq", "value": "model-transformers"}
        ],
        limit=50,
    )
    assert trace_id in {t.trace_id for t in found}

    model_spans = client.telemetry.query_spans(
        attribute_filters=[
            {"key": "stackray.deployment", "op": "eq", "value": "model-transformers"},
            {"key": "trace_id", "op": "eq", "value": trace_id},
        ],
        attributes_to_return=["stackray.deployment"],
    )
    assert [s.name for s in model_spans] == ["model-transformers.chat_completion"]
    assert model_spans[0].attributes == {"stackray.deployment": "model-transformers"}


def test_streamed_completion_span_ends_with_the_stream(stack):
    client = stack.openai()
    trace_id = os.urandom(16).hex()
    chunks = list(
        client.chat.completions.create(
            model="echo-model",
            messages=[{"role": "user", "content": "a b c d"}],
            stream=True,
            extra_headers={"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"},
        )
    )
    assert len(chunks) >= 4
    ls = stack.client()
    trace = eventually(lambda: ls.telemetry.get_trace(trace_id), lambda t: t.end_time)
    tree = eventually(
        lambda: ls.telemetry.get_span_tree(span_id=trace.root_span_id),
        lambda t: any(s.name == "inference.openai_chat_completion_stream" for s in t.values()),
    )
    stream_span = next(
        s for s in tree.values() if s.name == "inference.openai_chat_completion_stream"
    )
    assert stream_span.end_time is not None and stream_span.status == "ok"
    assert stream_span.end_time <= trace.end_time


def metric_total(stack, name: str, labels: dict[str, str]) -> float:
    with stack.http() as http:
        r = http.post(
            f"/v1/telemetry/metrics/{name}",
            json={
                "start_time": 0,
                "query_type": "instant",
                "label_matchers": [
                    {"name": k, "value": v, "operator": "="} for k, v in labels.items()
                ],
            },
        )
    assert r.status_code == 200, r.text
    return sum(point["value"] for series in r.json()["data"] for point in series["values"])


def test_metrics_count_the_tokens_of_requests_just_made(stack):
    client = stack.client()
    labels = {"model_id": MODEL, "provider_id": "transformers"}
    time.sleep(1.5)  # points of earlier tests still in flight land first
    before = {
        name: metric_total(stack, name, labels)
        for name in ("prompt_tokens", "completion_tokens", "requests")
    }
    prompt = completion = 0
    for content in ("Count to three", "Name a colour"):
        r = client.inference.chat_completion(
            model_id=MODEL,
            messages=[{"role": "user", "content": content}],
            sampling_params={"max_tokens": 5},
        )
        values = {m.metric: m.value for m in r.metrics or []}
        prompt += int(values["prompt_tokens"])
        completion += int(values["completion_tokens"])
    assert prompt > 0 and completion > 0

    eventually(
        lambda: metric_total(stack, "requests", labels) - before["requests"], lambda d: d >= 2
    )
    assert metric_total(stack, "prompt_tokens", labels) - before["prompt_tokens"] == prompt
    assert (
        metric_total(stack, "completion_tokens", labels) - before["completion_tokens"] == completion
    )
    # Queue time of the calls into the deployments is measured too (the inference
    # router in the gateway has no queue: only the model server's).
    assert metric_total(stack, "queue_time_seconds", {"deployment": "model-transformers"}) > 0
    with stack.http() as http:
        r = http.post(
            "/v1/telemetry/metrics/queue_time_seconds",
            json={"start_time": 0, "query_type": "range", "granularity": "1h"},
        )
    deployments = {
        lbl["value"] for s in r.json()["data"] for lbl in s["labels"] if lbl["name"] == "deployment"
    }
    assert "model-transformers" in deployments


def test_log_event_through_the_client(stack):
    client = stack.client()
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for payload in (
        {"type": "span_start", "name": "my-step"},
        {"type": "span_end", "status": "ok"},
    ):
        client.telemetry.log_event(
            event={
                "type": "structured_log",
                "trace_id": trace_id,
                "span_id": span_id,
                "timestamp": now,
                "payload": payload,
            },
            ttl_seconds=60,
        )
    span = client.telemetry.get_span(trace_id=trace_id, span_id=span_id)
    assert span.name == "my-step" and span.end_time is not None


def test_ray_prometheus_endpoint_serves_the_metrics(stack):
    """The per-model metrics are Ray metrics too: Ray's Prometheus endpoint on this node
    serves them (Ray reports them every few seconds)."""
    import httpx
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    stack.client().inference.chat_completion(
        model_id="echo-model", messages=[{"role": "user", "content": "count me"}]
    )

    def scrape() -> str:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    deadline = time.monotonic() + 90
    text = scrape()
    while "stackray_requests" not in text and time.monotonic() < deadline:
        time.sleep(2)
        text = scrape()
    lines = [
        line
        for line in text.splitlines()
        if "stackray_requests" in line and 'model_id="echo-model"' in line
    ]
    assert lines, "no stackray_requests series for echo-model on Ray's metrics endpoint"
    assert float(lines[-1].rsplit(" ", 1)[1]) >= 1
