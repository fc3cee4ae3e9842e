"""`TraceStore` queries on a real SQLite file: attribute filters with dotted names, trace
roots and ordering, span trees, metric series by granularity and label matchers."""

from __future__ import annotations

import pytest

from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.telemetry import MetricLabelMatcher, QueryCondition
from stackray.runtime.telemetry.store import MetricPoint, SpanRow, TraceStore, parse_granularity

S = 1_000_000_000


def row(span_id, trace_id, parent, name, start, end=None, status="ok", **attrs) -> SpanRow:
    return SpanRow(
        span_id, trace_id, parent, name, start * S, (end or start + 1) * S, status, attrs
    )


@pytest.fixture()
def store(tmp_path) -> TraceStore:
    s = TraceStore(tmp_path / "t.db")
    s.write_spans(
        [
            row("a1", "A", None, "GET /x", 10, 20, **{"stackray.deployment": "gateway"}),
            row(
                "a2",
                "A",
                "a1",
                "inference.chat",
                11,
                19,
                **{"stackray.deployment": "inference", "tokens": 7},
            ),
            row(
                "a3",
                "A",
                "a2",
                "provider.echo",
                12,
                18,
                status="error",
                **{"stackray.deployment": "inference", "tokens": 3},
            ),
            # B: its root's parent is a client span that is not in the store.
            row(
                "b1",
                "B",
                "client",
                "GET /y",
                30,
                31,
                **{"stackray.deployment": "gateway", "meta": {"user": {"tier": "gold"}}},
            ),
        ]
    )
    return s


def cond(key, op, value) -> QueryCondition:
    return QueryCondition(key=key, op=op, value=value)


def test_traces_have_their_root_span(store):
    traces = store.query_traces(None, 10, 0, None)
    assert [(t.trace_id, t.root_span_id) for t in traces] == [("B", "b1"), ("A", "a1")]
    assert [t.trace_id for t in store.query_traces(None, 10, 0, ["start_time"])] == ["A", "B"]
    assert [t.trace_id for t in store.query_traces(None, 1, 1, ["start_time"])] == ["B"]
    with pytest.raises(BadRequestError) as e:
        store.query_traces(None, 10, 0, ["-colour"])
    assert e.value.field == "order_by[0]"


def test_filters_on_dotted_attributes(store):
    find = lambda *c: [t.trace_id for t in store.query_traces(list(c), 10, 0, None)]  # noqa: E731
    assert find(cond("stackray.deployment", "eq", "inference")) == ["A"]
    assert find(cond("tokens", "gt", 5)) == ["A"]
    assert find(cond("tokens", "lt", 5)) == ["A"]
    assert find(cond("tokens", "gt", 50)) == []
    # Both conditions must hold for one span.
    assert find(cond("tokens", "gt", 5), cond("status", "eq", "error")) == []
    # A dotted name that is not a flat key is a path into nested attributes.
    assert find(cond("meta.user.tier", "eq", "gold")) == ["B"]
    assert sorted(find(cond("stackray.deployment", "ne", "inference"))) == ["A", "B"]
    with pytest.raises(BadRequestError) as e:
        store.query_traces([cond('bad"key', "eq", 1)], 10, 0, None)
    assert e.value.field == "attribute_filters[0].key"


def test_spans_query_tree_and_attributes_to_return(store):
    spans = store.query_spans([cond("name", "eq", "inference.chat")], ["tokens"], None)
    assert [(s.span_id, s.attributes) for s in spans] == [("a2", {"tokens": 7})]
    with_children = store.query_spans([cond("name", "eq", "inference.chat")], [], 1)
    assert [s.span_id for s in with_children] == ["a2", "a3"]
    tree = store.span_tree("a1", ["stackray.deployment"], None)
    assert list(tree) == ["a1", "a2", "a3"]
    assert tree["a3"].status == "error" and tree["a3"].attributes == {
        "stackray.deployment": "inference"
    }
    assert list(store.span_tree("a1", None, 1)) == ["a1", "a2"]
    picked = store.query_spans([cond("span_id", "eq", "b1")], ["meta.user.tier"], None)
    assert picked[0].attributes == {"meta.user.tier": "gold"}
    with pytest.raises(NotFoundError):
        store.span_tree("zzz", None, None)
    assert store.get_span("A", "a2").name == "inference.chat"
    with pytest.raises(NotFoundError):
        store.get_span("B", "a2")


def test_metric_series_by_granularity(store):
    labels_m = {"model_id": "m", "provider_id": "p"}
    labels_n = {"model_id": "n", "provider_id": "p"}
    store.write_metric_points(
        [
            MetricPoint("prompt_tokens", 1000, 5, labels_m),
            MetricPoint("prompt_tokens", 1030, 7, labels_m),
            MetricPoint("prompt_tokens", 1070, 1, labels_m),
            MetricPoint("prompt_tokens", 1010, 100, labels_n),
            MetricPoint("request_latency_seconds", 1000, 0.2, labels_m),
            MetricPoint("request_latency_seconds", 1010, 0.4, labels_m),
        ]
    )
    [m, n] = store.query_metrics("prompt_tokens", 990, 1100, "1m", "range", None)
    assert [(p.timestamp, p.value) for p in m.values] == [(960, 5), (1020, 8)]
    assert [(lbl.name, lbl.value) for lbl in n.labels] == [("model_id", "n"), ("provider_id", "p")]
    raw = store.query_metrics("prompt_tokens", 990, 1100, None, "range", None)
    assert [p.value for p in raw[0].values] == [5, 7, 1]
    [inst] = store.query_metrics(
        "prompt_tokens", 0, 2000, None, "instant", [MetricLabelMatcher(name="model_id", value="m")]
    )
    assert inst.values[0].value == 13 and inst.values[0].timestamp == 2000
    [avg] = store.query_metrics("request_latency_seconds", 0, 2000, "1h", "range", None)
    assert avg.values[0].value == pytest.approx(0.3)
    regex = store.query_metrics(
        "prompt_tokens",
        0,
        2000,
        None,
        "instant",
        [MetricLabelMatcher(name="model_id", value="[mn]", operator="=~")],
    )
    assert len(regex) == 2
    not_m = store.query_metrics(
        "prompt_tokens",
        0,
        2000,
        None,
        "instant",
        [MetricLabelMatcher(name="model_id", value="m", operator="!=")],
    )
    assert [s.values[0].value for s in not_m] == [100]
    assert store.query_metrics("nothing", 0, 2000, None, "range", None) == []
    with pytest.raises(BadRequestError):
        store.query_metrics("prompt_tokens", 2000, 1000, None, "range", None)


def test_granularity_parsing():
    assert parse_granularity("30s") == 30
    assert parse_granularity("5m") == 300
    assert parse_granularity("1d") == 86400
    assert parse_granularity(None) is None
    for bad in ("0m", "minute", "1y"):
        with pytest.raises(BadRequestError):
            parse_granularity(bad)


def test_two_writers_share_the_file(tmp_path):
    """Replicas on one node write to the same file (WAL)."""
    a, b = TraceStore(tmp_path / "s.db"), TraceStore(tmp_path / "s.db")
    a.write_spans([row("x", "T", None, "one", 1)])
    b.write_spans([row("y", "T", "x", "two", 2)])
    assert list(a.span_tree("x", None, None)) == ["x", "y"]


def test_points_of_one_second_are_merged_and_still_average_right(tmp_path):
    store = TraceStore(tmp_path / "m.db")
    labels = {"model_id": "m"}
    store.write_metric_points(
        [
            MetricPoint("request_latency_seconds", 100.1, 0.1, labels),
            MetricPoint("request_latency_seconds", 100.7, 0.3, labels),
            MetricPoint("request_latency_seconds", 101.2, 0.8, labels),
            MetricPoint("requests", 100.1, 1, labels),
            MetricPoint("requests", 100.7, 1, labels),
        ]
    )
    rows = store._conn().execute("SELECT COUNT(*) FROM metric_points").fetchone()[0]
    assert rows == 3
    [raw] = store.query_metrics("request_latency_seconds", 0, 200, None, "range", None)
    assert [(p.timestamp, round(p.value, 3)) for p in raw.values] == [(100, 0.2), (101, 0.8)]
    [avg] = store.query_metrics("request_latency_seconds", 0, 200, None, "instant", None)
    assert avg.values[0].value == pytest.approx(0.4)  # over 3 observations, not 2 rows
    [count] = store.query_metrics("requests", 0, 200, "1m", "range", None)
    assert [p.value for p in count.values] == [2]
