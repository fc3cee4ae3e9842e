"""Tracing through an in-process stack (no Ray): one trace per request across the gateway,
the inference router and the provider, the trace context carried by the `RequestContext`
(as it is across `DeploymentHandle` calls), streaming spans, metrics per model, the
telemetry API routes, and a remote provider receiving `traceparent`."""

from __future__ import annotations

import asyncio
import json
import pickle
import time

import pytest
from fastapi.testclient import TestClient

from stackray.deployments.gateway import create_gateway_app
from stackray.deployments.handles import Dispatcher
from stackray.runtime import telemetry
from stackray.runtime.calls import ApiClient, LocalTransport
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.request_context import RequestContext
from stackray.runtime.telemetry.store import TraceStore
from tests.unit.support.remote_servers import FakeService

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def telemetry_provider(**config) -> dict:
    return {"provider_id": "otel", "provider_type": "inline::meta-reference", "config": config}


def stack_config(tmp_path, inference: list[dict], models: list[dict], **telemetry_cfg) -> dict:
    telemetry_cfg.setdefault("export_interval_ms", 50)
    return {
        "version": 2,
        "image_name": "telemetry-test",
        "apis": ["inference", "telemetry"],
        "providers": {"inference": inference, "telemetry": [telemetry_provider(**telemetry_cfg)]},
        "models": models,
        "storage": {"data_dir": str(tmp_path)},
    }


ECHO = [{"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}]
ECHO_MODELS = [{"model_id": "m", "provider_id": "echo"}]


@pytest.fixture(autouse=True)
def _telemetry_off():
    yield
    telemetry.shutdown()


def open_client(raw: dict) -> TestClient:
    stack = parse_config(raw)
    telemetry.configure(stack, "local")
    routers = asyncio.run(build_local_stack(stack))
    return TestClient(create_gateway_app(stack, routers))


@pytest.fixture()
def client(tmp_path):
    with open_client(stack_config(tmp_path, ECHO, ECHO_MODELS)) as c:
        yield c


def store_of(tmp_path) -> TraceStore:
    return TraceStore(tmp_path / "telemetry" / "trace_store.db")


def spans_of(tmp_path, trace_id: str) -> dict[str, dict]:
    telemetry.force_flush()
    rows = store_of(tmp_path)._spans("trace_id = ?", [trace_id])
    return {r.name: r.__dict__ for r in rows}


def chat(client, content: str = "hi", model: str = "m"):
    return client.post(
        "/v1/inference/chat-completion",
        json={"model_id": model, "messages": [{"role": "user", "content": content}]},
    )


def test_one_trace_across_gateway_router_and_provider(client, tmp_path):
    r = chat(client)
    assert r.status_code == 200
    trace_id = r.headers["x-trace-id"]
    spans = spans_of(tmp_path, trace_id)
    assert set(spans) == {
        "POST /v1/inference/chat-completion",
        "inference.chat_completion",
        "provider.echo.chat_completion",
    }
    gateway = spans["POST /v1/inference/chat-completion"]
    router = spans["inference.chat_completion"]
    provider = spans["provider.echo.chat_completion"]
    assert gateway["parent_span_id"] is None
    assert router["parent_span_id"] == gateway["span_id"]
    assert provider["parent_span_id"] == router["span_id"]
    assert gateway["attributes"]["stackray.deployment"] == "local"
    assert gateway["attributes"]["http.route"] == "/v1/inference/chat-completion"
    assert gateway["attributes"]["http.response.status_code"] == 200
    # The inference router runs in the gateway's process: its span is the gateway's.
    assert router["attributes"]["stackray.deployment"] == "local"
    assert provider["attributes"]["stackray.model_id"] == "m"
    assert provider["attributes"]["stackray.provider_id"] == "echo"
    assert all(s["end_ns"] >= s["start_ns"] for s in spans.values())


def test_a_clients_traceparent_is_the_parent(client, tmp_path):
    r = client.post(
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"traceparent": TRACEPARENT},
    )
    assert r.headers["x-trace-id"] == TRACEPARENT.split("-")[1]
    spans = spans_of(tmp_path, TRACEPARENT.split("-")[1])
    assert spans["POST /v1/inference/chat-completion"]["parent_span_id"] == "00f067aa0ba902b7"
    traces = store_of(tmp_path).query_traces(None, 10, 0, None)
    root = [t for t in traces if t.trace_id == TRACEPARENT.split("-")[1]][0]
    assert root.root_span_id == spans["POST /v1/inference/chat-completion"]["span_id"]


def test_streamed_request_span_ends_with_the_stream(client, tmp_path):
    with client.stream(
        "POST",
        "/v1/inference/chat-completion",
        json={"model_id": "m", "messages": [{"role": "user", "content": "a b c"}], "stream": True},
    ) as r:
        trace_id = r.headers["x-trace-id"]
        body = r.read()
    assert body.count(b"data: ") == 6  # start, "echo:", a, b, c, complete
    spans = spans_of(tmp_path, trace_id)
    stream_span = spans["inference.chat_completion_stream"]
    provider = spans["provider.echo.chat_completion_stream"]
    gateway = spans["POST /v1/inference/chat-completion"]
    assert provider["parent_span_id"] == stream_span["span_id"]
    # Each ends only after the one it called: the stream had to be drained first.
    assert provider["end_ns"] <= stream_span["end_ns"] <= gateway["end_ns"]
    assert stream_span["status"] == "ok"


def test_errors_mark_the_spans(client, tmp_path):
    r = chat(client, model="nope")
    assert r.status_code == 404
    spans = spans_of(tmp_path, r.headers["x-trace-id"])
    router = spans["inference.chat_completion"]
    assert router["status"] == "error"
    assert router["attributes"]["error.type"] == "NotFoundError"
    assert router["attributes"]["stackray.status_code"] == 404
    assert (
        spans["POST /v1/inference/chat-completion"]["attributes"]["http.response.status_code"]
        == 404
    )


def test_sampling_zero_records_nothing_but_still_answers(tmp_path):
    with open_client(stack_config(tmp_path, ECHO, ECHO_MODELS, sampling_ratio=0.0)) as c:
        r = chat(c)
        assert r.status_code == 200
        telemetry.force_flush()
        assert store_of(tmp_path).query_traces(None, 10, 0, None) == []


class Replica(Dispatcher):
    """A deployment class as Serve runs it: called through `call_api` with a context."""

    async def work(self) -> str:
        from opentelemetry import trace

        sc = trace.get_current_span().get_span_context()
        return f"{sc.trace_id:032x}"

    def _target(self) -> Replica:
        return self


def test_context_crosses_a_handle_call_pickled(tmp_path):
    """Across `DeploymentHandle` calls the `RequestContext` is pickled; the callee's span
    is a child of the caller's current span."""
    stack = parse_config(stack_config(tmp_path, ECHO, ECHO_MODELS))
    telemetry.configure(stack, "caller")

    async def scenario() -> tuple[str, str, str]:
        from opentelemetry import trace

        tracer = telemetry.tracing._state.tracer
        with tracer.start_as_current_span("caller-span") as span:
            ctx = telemetry.outgoing(RequestContext(provider_data={"k": "v"}))
            assert ctx is not None and ctx.traceparent and ctx.sent_at
            assert ctx.provider_data == {"k": "v"}
            wire = pickle.loads(pickle.dumps(ctx))
            seen = await Replica().call_api(wire, "work")
            sc = span.get_span_context()
            assert trace.get_current_span() is span
            return seen, f"{sc.trace_id:032x}", f"{sc.span_id:016x}"

    seen, trace_id, caller_span = asyncio.run(scenario())
    assert seen == trace_id
    spans = spans_of(tmp_path, trace_id)
    assert spans["caller.work"]["parent_span_id"] == caller_span
    assert spans["caller.work"]["attributes"]["stackray.deployment"] == "caller"


def test_api_client_carries_the_current_span(tmp_path):
    """`ApiClient` (how routers call other deployments) sends the current span along."""
    stack = parse_config(stack_config(tmp_path, ECHO, ECHO_MODELS))
    telemetry.configure(stack, "caller")
    client = ApiClient(LocalTransport(Replica(), "callee"), "callee")

    async def scenario() -> str:
        tracer = telemetry.tracing._state.tracer
        with tracer.start_as_current_span("outer") as span:
            await client.work()
            return f"{span.get_span_context().span_id:016x}"

    outer = asyncio.run(scenario())
    telemetry.force_flush()
    rows = store_of(tmp_path)._spans("name = ?", ["callee.work"])
    assert [r.parent_span_id for r in rows] == [outer]


def test_no_telemetry_api_means_no_tracing(tmp_path):
    raw = stack_config(tmp_path, ECHO, ECHO_MODELS)
    raw["apis"] = ["inference"]
    with open_client(raw) as c:
        r = chat(c)
        assert r.status_code == 200 and "x-trace-id" not in r.headers
    assert not telemetry.enabled()
    assert telemetry.outgoing(None) is None


# ---- the telemetry API over HTTP ---------------------------------------------------------------


def test_trace_and_span_routes(client, tmp_path):
    trace_id = chat(client).headers["x-trace-id"]
    telemetry.force_flush()
    trace = client.get(f"/v1/telemetry/traces/{trace_id}").json()
    assert trace["trace_id"] == trace_id
    root = trace["root_span_id"]
    span = client.get(f"/v1/telemetry/traces/{trace_id}/spans/{root}").json()
    assert span["name"] == "POST /v1/inference/chat-completion"
    tree = client.post(
        f"/v1/telemetry/spans/{root}/tree",
        json={"attributes_to_return": ["stackray.deployment"]},
    ).json()["data"]
    assert len(tree) == 3
    assert {s["attributes"]["stackray.deployment"] for s in tree.values()} == {"local"}
    assert all(s["status"] == "ok" for s in tree.values())
    shallow = client.post(f"/v1/telemetry/spans/{root}/tree", json={"max_depth": 1}).json()["data"]
    assert len(shallow) == 2

    found = client.post(
        "/v1/telemetry/traces",
        json={
            "attribute_filters": [{"key": "stackray.model_id", "op": "eq", "value": "m"}],
            "limit": 5,
        },
    ).json()["data"]
    assert [t["trace_id"] for t in found] == [trace_id]

    spans = client.post(
        "/v1/telemetry/spans",
        json={
            "attribute_filters": [
                {"key": "stackray.provider_id", "op": "eq", "value": "echo"},
                {"key": "name", "op": "ne", "value": "x"},
            ],
            "attributes_to_return": ["stackray.model_id"],
        },
    ).json()["data"]
    assert [s["attributes"] for s in spans] == [{"stackray.model_id": "m"}]

    assert client.get("/v1/telemetry/traces/0123").status_code == 404
    assert client.get(f"/v1/telemetry/traces/{trace_id}/spans/nope").status_code == 404
    bad = client.post("/v1/telemetry/traces", json={"order_by": ["colour"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "order_by[0]"


def test_query_traces_through_llama_stack_client_types(client, tmp_path):
    """The llama-stack-client's response types parse what the routes return."""
    from llama_stack_client.types.query_spans_response import QuerySpansResponse
    from llama_stack_client.types.telemetry_get_span_tree_response import (
        TelemetryGetSpanTreeResponse,
    )
    from llama_stack_client.types.trace import Trace

    trace_id = chat(client).headers["x-trace-id"]
    telemetry.force_flush()
    data = client.post("/v1/telemetry/traces", json={}).json()["data"]
    traces = [Trace.model_validate(t) for t in data]
    assert trace_id in {t.trace_id for t in traces}
    root = [t for t in traces if t.trace_id == trace_id][0].root_span_id
    tree = client.post(f"/v1/telemetry/spans/{root}/tree", json={}).json()
    from pydantic import TypeAdapter

    parsed = TypeAdapter(TelemetryGetSpanTreeResponse).validate_python(tree["data"])
    assert len(parsed) == 3
    spans = client.post(
        "/v1/telemetry/spans", json={"attribute_filters": [], "attributes_to_return": []}
    ).json()
    QuerySpansResponse.model_validate(spans)


def test_log_event_structured_spans_and_metrics(client, tmp_path):
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    tid, sid = "a" * 32, "b" * 16
    events = [
        {
            "type": "structured_log",
            "trace_id": tid,
            "span_id": sid,
            "timestamp": ts,
            "payload": {"type": "span_start", "name": "client-work"},
            "attributes": {"app.step": "one"},
        },
        {
            "type": "unstructured_log",
            "trace_id": tid,
            "span_id": sid,
            "timestamp": ts,
            "message": "working",
            "severity": "info",
        },
        {
            "type": "metric",
            "trace_id": tid,
            "span_id": sid,
            "timestamp": ts,
            "metric": "app_widgets",
            "value": 3,
            "unit": "count",
            "attributes": {"shop": "north"},
        },
        {
            "type": "structured_log",
            "trace_id": tid,
            "span_id": sid,
            "timestamp": ts,
            "payload": {"type": "span_end", "status": "error"},
        },
    ]
    for event in events:
        r = client.post("/v1/telemetry/events", json={"event": event, "ttl_seconds": 60})
        assert r.status_code == 200, r.text
    span = client.get(f"/v1/telemetry/traces/{tid}/spans/{sid}").json()
    assert span["name"] == "client-work" and span["attributes"]["app.step"] == "one"
    assert span["end_time"]
    tree = client.post(f"/v1/telemetry/spans/{sid}/tree", json={}).json()["data"]
    assert tree[sid]["status"] == "error"
    metric = client.post(
        "/v1/telemetry/metrics/app_widgets",
        json={"start_time": int(now) - 5, "query_type": "range"},
    ).json()["data"]
    assert metric[0]["labels"] == [{"name": "shop", "value": "north"}]
    assert metric[0]["values"][0]["value"] == 3
    never = {**events[-1], "span_id": "c" * 16}
    assert (
        client.post("/v1/telemetry/events", json={"event": never, "ttl_seconds": 1}).status_code
        == 404
    )
    bad = client.post("/v1/telemetry/events", json={"event": {"type": "metric"}, "ttl_seconds": 1})
    assert bad.status_code == 400


def test_export_without_datasetio_is_a_clear_400(client):
    r = client.post(
        "/v1/telemetry/spans/export",
        json={"attribute_filters": [], "attributes_to_save": [], "dataset_id": "d"},
    )
    assert r.status_code == 400
    assert "datasetio API is not served" in r.json()["detail"]


def test_export_appends_rows_to_the_dataset(tmp_path):
    """With a datasetio API the spans become rows (here the router is given a recording
    datasetio object: the datasetio API is built on another branch)."""
    from stackray.api.telemetry import QueryCondition, SaveSpansToDatasetRequest
    from stackray.runtime.routers.telemetry import build_router

    class Rows:
        def __init__(self) -> None:
            self.appended: list[tuple[str, object]] = []

        async def append_rows(self, dataset_id: str, request: object) -> None:
            self.appended.append((dataset_id, request))

    stack = parse_config(stack_config(tmp_path, ECHO, ECHO_MODELS))
    telemetry.configure(stack, "local")
    datasetio = Rows()

    async def scenario() -> None:
        from stackray.api.datatypes import Api

        routers = await build_local_stack(stack)
        router = await build_router(stack, {Api.datasetio: datasetio})
        with TestClient(create_gateway_app(stack, routers)) as c:
            chat(c)
        telemetry.force_flush()
        await router.save_spans_to_dataset(
            SaveSpansToDatasetRequest(
                attribute_filters=[
                    QueryCondition(key="stackray.provider_id", op="eq", value="echo")
                ],
                attributes_to_save=["stackray.provider_id"],
                dataset_id="spans",
            )
        )

    asyncio.run(scenario())
    [(dataset_id, request)] = datasetio.appended
    rows = request["rows"] if isinstance(request, dict) else request.rows  # type: ignore[attr-defined]
    assert dataset_id == "spans"
    assert [r["name"] for r in rows] == ["provider.echo.chat_completion"]
    assert rows[0]["stackray.provider_id"] == "echo" and rows[0]["trace_id"]


# ---- remote provider: traceparent out, token metrics in --------------------------------------


@pytest.fixture()
def remote_client(openai_server: FakeService, tmp_path):
    inference = [
        {
            "provider_id": "vllm",
            "provider_type": "remote::vllm",
            "config": {"url": f"{openai_server.url}/v1", "retry_backoff_s": 0.01},
        }
    ]
    models = [{"model_id": "m", "provider_id": "vllm", "provider_model_id": "served-model"}]
    with open_client(stack_config(tmp_path, inference, models)) as c:
        yield c


def test_remote_provider_receives_traceparent(remote_client, openai_server, tmp_path):
    r = chat(remote_client, "one two three")
    assert r.status_code == 200
    trace_id = r.headers["x-trace-id"]
    sent = openai_server.last.headers["traceparent"]
    assert sent.split("-")[1] == trace_id
    spans = spans_of(tmp_path, trace_id)
    assert sent.split("-")[2] == spans["provider.vllm.chat_completion"]["span_id"]


def test_metrics_count_tokens_per_model(remote_client, openai_server, tmp_path):
    start = int(time.time()) - 1
    first = chat(remote_client, "one two three").json()
    second = chat(remote_client, "four five").json()
    expected_prompt = sum(
        next(m["value"] for m in r["metrics"] if m["metric"] == "prompt_tokens")
        for r in (first, second)
    )
    expected_completion = sum(
        next(m["value"] for m in r["metrics"] if m["metric"] == "completion_tokens")
        for r in (first, second)
    )
    with remote_client.stream(
        "POST",
        "/v1/openai/v1/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "six"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    streamed = next(c["usage"] for c in chunks if c.get("usage"))
    telemetry.tracing._state.metrics.flush_and_stop()

    def query(name: str, **extra) -> list[dict]:
        body = {"start_time": start, "query_type": "range", **extra}
        resp = remote_client.post(f"/v1/telemetry/metrics/{name}", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    [prompt] = query(
        "prompt_tokens",
        granularity="1h",
        label_matchers=[{"name": "model_id", "value": "m", "operator": "="}],
    )
    assert {(lbl["name"], lbl["value"]) for lbl in prompt["labels"]} == {
        ("model_id", "m"),
        ("provider_id", "vllm"),
    }
    total_prompt = sum(v["value"] for v in prompt["values"])
    assert total_prompt == expected_prompt + streamed["prompt_tokens"]
    [completion] = query("completion_tokens", query_type="instant")
    assert completion["values"][0]["value"] == expected_completion + streamed["completion_tokens"]
    [requests] = query("requests", query_type="instant")
    assert requests["values"][0]["value"] == 3
    [ttft] = query("time_to_first_token_seconds")
    assert len(ttft["values"]) == 1 and ttft["values"][0]["value"] > 0
    assert (
        query("requests", label_matchers=[{"name": "model_id", "value": "x.*", "operator": "=~"}])
        == []
    )
    bad = remote_client.post(
        "/v1/telemetry/metrics/requests",
        json={"start_time": start, "query_type": "range", "granularity": "soon"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "granularity"


def test_traces_and_spans_are_read_only_by_their_caller(tmp_path):
    keys = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-0123456789abcdef"}
    raw = stack_config(tmp_path, ECHO, ECHO_MODELS)
    raw["server"] = {
        "auth": {
            "provider_type": "api_key",
            "config": {
                "keys": [
                    {"key": k, "principal": p, "attributes": {"roles": [p]}}
                    for p, k in keys.items()
                ]
            },
        }
    }
    alice = {"Authorization": f"Bearer {keys['alice']}"}
    bob = {"Authorization": f"Bearer {keys['bob']}"}
    with open_client(raw) as client:
        r = client.post(
            "/v1/inference/chat-completion",
            headers=alice,
            json={"model_id": "m", "messages": [{"role": "user", "content": "private"}]},
        )
        assert r.status_code == 200
        trace_id = r.headers["x-trace-id"]
        spans = spans_of(tmp_path, trace_id)
        assert {s["attributes"].get("stackray.principal") for s in spans.values()} == {"alice"}
        root = client.get(f"/v1/telemetry/traces/{trace_id}", headers=alice).json()
        assert root["trace_id"] == trace_id
        missing = "0" * 32
        theirs = client.get(f"/v1/telemetry/traces/{trace_id}", headers=bob)
        assert theirs.status_code == 404
        assert theirs.text.replace(trace_id, "ID") == client.get(
            f"/v1/telemetry/traces/{missing}", headers=bob
        ).text.replace(missing, "ID")
        span_id = root["root_span_id"]
        path = f"/v1/telemetry/traces/{trace_id}/spans/{span_id}"
        assert client.get(path, headers=alice).status_code == 200
        assert client.get(path, headers=bob).status_code == 404
        tree = f"/v1/telemetry/spans/{span_id}/tree"
        assert client.post(tree, headers=bob, json={}).status_code == 404
        assert len(client.post(tree, headers=alice, json={}).json()["data"]) == len(spans)
        query = {"attribute_filters": [], "attributes_to_return": ["stackray.deployment"]}
        theirs_spans = client.post("/v1/telemetry/spans", headers=bob, json=query).json()["data"]
        assert trace_id not in {s["trace_id"] for s in theirs_spans}
        mine = client.post("/v1/telemetry/spans", headers=alice, json=query).json()["data"]
        assert trace_id in {s["trace_id"] for s in mine}
        assert all(set(s["attributes"]) <= {"stackray.deployment"} for s in mine)
        listed = client.post("/v1/telemetry/traces", headers=bob, json={}).json()["data"]
        assert trace_id not in {t["trace_id"] for t in listed}
        listed = client.post("/v1/telemetry/traces", headers=alice, json={}).json()["data"]
        assert trace_id in {t["trace_id"] for t in listed}
