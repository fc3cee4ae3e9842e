"""`TraceStore`: spans, logged events and metric points in one SQLite file.

Every replica on a node writes to the same file (WAL mode, one connection per thread);
writes come in batches from background threads (the span processor's, the metric
buffer's), never from a request. The telemetry API deployment reads it.

Attributes are stored as one JSON object per span with flat dotted keys
(``stackray.deployment``), so filters use ``json_extract`` on the quoted key; a dotted
name that is not a flat key is looked up as a path into nested objects.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.telemetry import (
    MetricDataPoint,
    MetricLabel,
    MetricLabelMatcher,
    MetricLabelOperator,
    MetricSeries,
    QueryCondition,
    QueryConditionOp,
    Span,
    SpanStatus,
    SpanWithStatus,
    Trace,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    span_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    status TEXT,
    attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_id);
CREATE INDEX IF NOT EXISTS spans_parent ON spans(parent_span_id);
CREATE TABLE IF NOT EXISTS events (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    severity TEXT,
    message TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS events_span ON events(span_id);
CREATE TABLE IF NOT EXISTS metric_points (
    name TEXT NOT NULL,
    ts REAL NOT NULL,
    value REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS metric_points_name_ts ON metric_points(name, ts);
"""

_SPAN_COLUMNS = {
    "name": "name",
    "trace_id": "trace_id",
    "span_id": "span_id",
    "parent_span_id": "parent_span_id",
    "status": "status",
}
_OPS = {
    QueryConditionOp.eq: "=",
    QueryConditionOp.ne: "!=",
    QueryConditionOp.gt: ">",
    QueryConditionOp.lt: "<",
}
_TRACE_ORDER = {"start_time": "start_ns", "end_time": "end_ns", "trace_id": "trace_id"}
_GRANULARITY = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Metrics whose points are averaged in a bucket (durations); all others are summed.
AVERAGED_SUFFIXES = ("_seconds", "_ms", "_s")


@dataclass(frozen=True)
class SpanRow:
    span_id: str
    trace_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int | None
    status: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class MetricPoint:
    name: str
    ts: float
    value: float
    labels: dict[str, str]
    count: int = 1
    """How many observations `value` sums (points are merged per second before storing)."""


def merge_points(points: Iterable[MetricPoint]) -> list[MetricPoint]:
    """Points of the same metric and labels within one second, merged into one (values
    summed, observations counted): a busy replica stores a few rows a second, not a few
    per request."""
    merged: dict[tuple[str, str, int], list[Any]] = {}
    for p in points:
        key = (p.name, json.dumps(p.labels, sort_keys=True), int(p.ts))
        entry = merged.get(key)
        if entry is None:
            merged[key] = [p.labels, p.value, p.count]
        else:
            entry[1] += p.value
            entry[2] += p.count
    return [
        MetricPoint(name, float(second), value, labels, count)
        for (name, _, second), (labels, value, count) in merged.items()
    ]


def ns_to_datetime(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def datetime_to_ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1e9)


def _json_path(key: str) -> str:
    return "$." + ".".join('"' + part + '"' for part in key.split("."))


def attribute_expr(key: str, field: str) -> str:
    """SQL for the value of span field or attribute `key` (dotted names allowed)."""
    if not key or '"' in key or "\\" in key:
        raise BadRequestError(f"invalid attribute name {key!r}", field=field)
    if key in _SPAN_COLUMNS:
        return _SPAN_COLUMNS[key]
    flat = '$."' + key + '"'
    if "." not in key:
        return f"json_extract(attributes, '{flat}')"
    return f"COALESCE(json_extract(attributes, '{flat}'), json_extract(attributes, '{_json_path(key)}'))"


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def filter_sql(
    filters: Sequence[QueryCondition] | None, field: str = "attribute_filters"
) -> tuple[str, list[Any]]:
    """A WHERE clause (without the keyword; "1" for none) and its parameters."""
    clauses, params = [], []
    for i, cond in enumerate(filters or ()):
        expr = attribute_expr(cond.key, f"{field}[{i}].key")
        if cond.value is None:
            clauses.append(
                f"{expr} IS NULL" if cond.op == QueryConditionOp.eq else f"{expr} IS NOT NULL"
            )
            if cond.op in (QueryConditionOp.gt, QueryConditionOp.lt):
                raise BadRequestError("gt/lt need a value", field=f"{field}[{i}].value")
            continue
        if cond.op == QueryConditionOp.ne:
            clauses.append(f"({expr} IS NULL OR {expr} != ?)")
        else:
            clauses.append(f"{expr} {_OPS[cond.op]} ?")
        params.append(_sql_value(cond.value))
    return (" AND ".join(clauses) or "1"), params


def pick_attributes(attributes: dict[str, Any], names: Sequence[str] | None) -> dict[str, Any]:
    """`attributes` limited to `names` (all when `names` is empty or None); a dotted name
    that is not a flat key is looked up in nested objects."""
    if not names:
        return attributes
    out: dict[str, Any] = {}
    for name in names:
        if name in attributes:
            out[name] = attributes[name]
            continue
        value: Any = attributes
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                break
        if value is not None:
            out[name] = value
    return out


def parse_granularity(text: str | None) -> int | None:
    """Seconds per bucket ('1m' -> 60); None for raw points; a 400 naming the field."""
    if text is None or text == "":
        return None
    m = _GRANULARITY.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise BadRequestError(
            f"granularity {text!r} is not a duration like '30s', '1m', '1h' or '1d'",
            field="granularity",
        )
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def _label_match(labels: dict[str, str], matchers: Sequence[MetricLabelMatcher]) -> bool:
    for m in matchers:
        value = labels.get(m.name, "")
        if m.operator == MetricLabelOperator.eq and value != m.value:
            return False
        if m.operator == MetricLabelOperator.ne and value == m.value:
            return False
        if m.operator in (MetricLabelOperator.regex, MetricLabelOperator.not_regex):
            found = re.fullmatch(m.value, value) is not None
            if found != (m.operator == MetricLabelOperator.regex):
                return False
    return True


class TraceStore:
    """Spans, events and metric points in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # Telemetry may lose its last writes to an OS crash; it must not cost requests.
            conn.execute("PRAGMA synchronous=OFF")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---- writes ---------------------------------------------------------------------------

    def write_spans(self, rows: Iterable[SpanRow]) -> None:
        data = [
            (
                r.span_id,
                r.trace_id,
                r.parent_span_id,
                r.name,
                r.start_ns,
                r.end_ns,
                r.status,
                json.dumps(r.attributes, default=str),
            )
            for r in rows
        ]
        if not data:
            return
        conn = self._conn()
        with _transaction(conn):
            conn.executemany("INSERT OR REPLACE INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?)", data)

    def end_span(self, span_id: str, end_ns: int, status: str) -> bool:
        conn = self._conn()
        with _transaction(conn):
            cur = conn.execute(
                "UPDATE spans SET end_ns = ?, status = ? WHERE span_id = ?",
                (end_ns, status, span_id),
            )
        return cur.rowcount > 0

    def write_event(
        self,
        trace_id: str,
        span_id: str,
        ts_ns: int,
        severity: str | None,
        message: str | None,
        attributes: dict[str, Any],
        ttl_seconds: int,
    ) -> None:
        now = time.time()
        conn = self._conn()
        with _transaction(conn):
            conn.execute("DELETE FROM events WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    trace_id,
                    span_id,
                    ts_ns,
                    severity,
                    message,
                    json.dumps(attributes, default=str),
                    now + ttl_seconds if ttl_seconds else None,
                ),
            )

    def write_metric_points(self, points: Iterable[MetricPoint]) -> None:
        data = [
            (p.name, p.ts, p.value, json.dumps(p.labels, sort_keys=True), p.count)
            for p in merge_points(points)
        ]
        if not data:
            return
        conn = self._conn()
        with _transaction(conn):
            conn.executemany("INSERT INTO metric_points VALUES (?, ?, ?, ?, ?)", data)

    # ---- span queries -----------------------------------------------------------------------

    def _spans(self, where: str, params: Sequence[Any], tail: str = "") -> list[SpanRow]:
        rows = self._conn().execute(
            "SELECT span_id, trace_id, parent_span_id, name, start_ns, end_ns, status, attributes "
            f"FROM spans WHERE {where} {tail}",
            params,
        )
        return [SpanRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]

    def query_traces(
        self,
        filters: Sequence[QueryCondition] | None,
        limit: int,
        offset: int,
        order_by: Sequence[str] | None,
    ) -> list[Trace]:
        """Traces with at least one span matching every filter; the root span is the one
        whose parent is not in the store (the gateway's, or the first one of a client)."""
        where, params = filter_sql(filters)
        order = []
        for i, item in enumerate(order_by or ["-start_time"]):
            text = item.strip()
            desc = text.startswith("-") or text.lower().endswith(" desc")
            name = text.lstrip("-+").split()[0] if text.lstrip("-+") else ""
            if name not in _TRACE_ORDER:
                raise BadRequestError(
                    f"cannot order traces by {item!r} (use {', '.join(_TRACE_ORDER)}, '-' for descending)",
                    field=f"order_by[{i}]",
                )
            order.append(f"{_TRACE_ORDER[name]} {'DESC' if desc else 'ASC'}")
        sql = f"""
            WITH matched AS (SELECT DISTINCT trace_id FROM spans WHERE {where}),
            roots AS (
                SELECT s.trace_id, s.span_id, s.start_ns, s.end_ns,
                       ROW_NUMBER() OVER (PARTITION BY s.trace_id ORDER BY s.start_ns) AS n
                FROM spans s JOIN matched m ON s.trace_id = m.trace_id
                WHERE s.parent_span_id IS NULL OR NOT EXISTS
                    (SELECT 1 FROM spans p WHERE p.span_id = s.parent_span_id)
            )
            SELECT trace_id, span_id, start_ns, end_ns FROM roots WHERE n = 1
            ORDER BY {", ".join(order)} LIMIT ? OFFSET ?
        """
        rows = self._conn().execute(sql, [*params, limit, offset]).fetchall()
        return [
            Trace(
                trace_id=r[0],
                root_span_id=r[1],
                start_time=ns_to_datetime(r[2]),  # type: ignore[arg-type]
                end_time=ns_to_datetime(r[3]),
            )
            for r in rows
        ]

    def get_trace(self, trace_id: str) -> Trace:
        traces = self.query_traces(
            [QueryCondition(key="trace_id", op=QueryConditionOp.eq, value=trace_id)], 1, 0, None
        )
        if not traces:
            raise NotFoundError(f"trace {trace_id!r} not found", field="trace_id")
        return traces[0]

    def get_span(self, trace_id: str, span_id: str) -> Span:
        rows = self._spans("span_id = ? AND trace_id = ?", [span_id, trace_id])
        if not rows:
            raise NotFoundError(
                f"span {span_id!r} of trace {trace_id!r} not found", field="span_id"
            )
        return to_span(rows[0], None)

    def span_tree(
        self, span_id: str, attributes_to_return: Sequence[str] | None, max_depth: int | None
    ) -> dict[str, SpanWithStatus]:
        """The span and its descendants (down to `max_depth` levels below it), by span id."""
        roots = self._spans("span_id = ?", [span_id])
        if not roots:
            raise NotFoundError(f"span {span_id!r} not found", field="span_id")
        out: dict[str, SpanWithStatus] = {}
        for row in self._descendants(roots, max_depth):
            span = to_span(row, attributes_to_return)
            out[row.span_id] = SpanWithStatus(
                **span.model_dump(),
                status=SpanStatus(row.status) if row.status in ("ok", "error") else None,
            )
        return out

    def _descendants(self, roots: list[SpanRow], max_depth: int | None) -> list[SpanRow]:
        out = list(roots)
        level, depth = roots, 0
        seen = {r.span_id for r in roots}
        while level and (max_depth is None or depth < max_depth):
            ids = [r.span_id for r in level]
            marks = ",".join("?" * len(ids))
            level = [
                r
                for r in self._spans(f"parent_span_id IN ({marks})", ids, "ORDER BY start_ns")
                if r.span_id not in seen
            ]
            seen.update(r.span_id for r in level)
            out.extend(level)
            depth += 1
        return out

    def query_spans(
        self,
        filters: Sequence[QueryCondition],
        attributes_to_return: Sequence[str] | None,
        max_depth: int | None,
        limit: int = 10000,
    ) -> list[Span]:
        """Spans matching every filter, each followed by its descendants down to
        `max_depth` levels when `max_depth` is given."""
        where, params = filter_sql(filters)
        rows = self._spans(where, params, f"ORDER BY start_ns LIMIT {int(limit)}")
        if max_depth:
            rows = self._descendants(rows, max_depth)
        return [to_span(r, attributes_to_return) for r in rows]

    # ---- metric queries ---------------------------------------------------------------------

    def query_metrics(
        self,
        name: str,
        start: float,
        end: float | None,
        granularity: str | None,
        query_type: str,
        matchers: Sequence[MetricLabelMatcher] | None,
    ) -> list[MetricSeries]:
        """Series of metric `name` between `start` and `end` (Unix seconds), one per label
        set: every stored point (1 s resolution), or one point per `granularity` bucket
        (summed; averaged over observations for durations); an instant query gives one
        point per series for the whole range."""
        bucket = parse_granularity(granularity)
        end = time.time() if end is None else end
        if end < start:
            raise BadRequestError("end_time is before start_time", field="end_time")
        rows = self._conn().execute(
            "SELECT ts, value, count, labels FROM metric_points "
            "WHERE name = ? AND ts >= ? AND ts <= ? ORDER BY ts",
            (name, start, end),
        )
        average = name.endswith(AVERAGED_SUFFIXES)
        series: dict[str, list[tuple[float, float, int]]] = {}
        for ts, value, count, labels in rows:
            series.setdefault(labels, []).append((ts, value, count))
        out = []
        for labels_json, points in sorted(series.items()):
            labels = json.loads(labels_json)
            if matchers and not _label_match(labels, matchers):
                continue
            if query_type == "instant":
                values = [(int(end), _aggregate(points, average))]
            elif bucket is None:
                values = [(int(ts), _aggregate([(ts, v, n)], average)) for ts, v, n in points]
            else:
                buckets: dict[int, list[tuple[float, float, int]]] = {}
                for point in points:
                    buckets.setdefault(int(math.floor(point[0] / bucket) * bucket), []).append(
                        point
                    )
                values = [(b, _aggregate(ps, average)) for b, ps in sorted(buckets.items())]
            out.append(
                MetricSeries(
                    metric=name,
                    labels=[MetricLabel(name=k, value=str(v)) for k, v in sorted(labels.items())],
                    values=[MetricDataPoint(timestamp=t, value=v) for t, v in values],
                )
            )
        return out


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One transaction (the connection is in autocommit mode: without it every row of an
    `executemany` would be a transaction of its own, 10x slower)."""
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _aggregate(points: list[tuple[float, float, int]], average: bool) -> float:
    total = float(sum(v for _, v, _ in points))
    count = sum(n for _, _, n in points)
    return total / count if average and count else total


def to_span(row: SpanRow, attributes_to_return: Sequence[str] | None) -> Span:
    return Span(
        span_id=row.span_id,
        trace_id=row.trace_id,
        parent_span_id=row.parent_span_id,
        name=row.name,
        start_time=ns_to_datetime(row.start_ns),  # type: ignore[arg-type]
        end_time=ns_to_datetime(row.end_ns),
        attributes=pick_attributes(row.attributes, attributes_to_return),
    )
