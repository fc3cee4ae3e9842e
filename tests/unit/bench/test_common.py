"""The pure helpers of bench/_common.py: statistics, the load generator, table output."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[3] / "bench" / "_common.py"
_spec = importlib.util.spec_from_file_location("bench_common", _PATH)
assert _spec is not None and _spec.loader is not None
common = importlib.util.module_from_spec(_spec)
sys.modules["bench_common"] = common
_spec.loader.exec_module(common)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 0, 1.0),
        ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
        (list(range(1, 101)), 99, 99.01),
        ([10.0, 20.0], 25, 12.5),
    ],
)
def test_percentile_interpolates_like_numpy(values, q, expected):
    assert common.percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan_and_bad_q_raises():
    assert math.isnan(common.percentile([], 50))
    with pytest.raises(ValueError):
        common.percentile([1.0], 101)


def test_ratio_handles_zero_and_nan():
    assert common.ratio(3.0, 2.0) == 1.5
    assert math.isnan(common.ratio(1.0, 0.0))
    assert math.isnan(common.ratio(math.nan, 1.0))


def test_load_result_summary():
    r = common.LoadResult(concurrency=2, latencies=[0.010, 0.020, 0.030], units=12, elapsed=2.0)
    assert r.requests == 3
    assert r.p50_ms == pytest.approx(20.0)
    assert r.throughput == pytest.approx(1.5)
    assert r.unit_rate == pytest.approx(6.0)
    s = r.summary()
    assert s["requests"] == 3 and s["p50_ms"] == pytest.approx(20.0) and s["errors"] == 0
    empty = common.LoadResult(concurrency=1).summary()
    assert empty["p50_ms"] is None and empty["throughput_rps"] is None


def test_run_load_fixed_count_respects_concurrency():
    active = 0
    peak = 0

    async def call():
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001)
        active -= 1
        return 3

    result = asyncio.run(common.run_load(call, concurrency=4, requests=10, warmup=2))
    assert result.requests == 10
    assert result.units == 30
    assert peak == 4
    assert result.errors == 0 and result.elapsed > 0


def test_run_load_duration_and_non_numeric_results():
    async def call():
        await asyncio.sleep(0.005)
        return {"not": "a number"}

    result = asyncio.run(common.run_load(call, concurrency=2, duration=0.1))
    assert 4 <= result.requests <= 60
    assert result.units == result.requests


def test_run_load_counts_errors_and_stops_after_too_many():
    calls = 0

    async def call():
        nonlocal calls
        calls += 1
        raise RuntimeError("HTTP 503")

    result = asyncio.run(common.run_load(call, concurrency=1, requests=100, max_errors=5))
    assert result.errors == 5 and calls == 5
    assert result.requests == 0
    assert result.first_error == "RuntimeError: HTTP 503"


def test_run_load_needs_a_bound():
    async def call():
        return None

    with pytest.raises(ValueError):
        asyncio.run(common.run_load(call, concurrency=1))


def test_fmt_and_fmt_ratio():
    assert common.fmt(1234.567) == "1,234.6"
    assert common.fmt(1.5, 3) == "1.500"
    assert common.fmt(7) == "7"
    assert common.fmt(None) == "-"
    assert common.fmt(math.nan) == "-"
    assert common.fmt(True) == "yes"
    assert common.fmt_ratio(1.234) == "1.23x"
    assert common.fmt_ratio(0.00123) == "0.0012x"
    assert common.fmt_ratio(math.nan) == "-"


def test_format_table_aligns_columns():
    text = common.format_table(
        ["path", "req/s", "ratio"],
        [["stack", 85.7, "0.50x"], ["direct, in-process", 12345.0, "1.00x"]],
        title="T",
    )
    lines = text.splitlines()
    assert lines[0] == "T"
    assert lines[1].startswith("path") and lines[1].endswith("ratio")
    assert set(lines[2].replace(" ", "")) == {"-"}
    # first column left-aligned, numbers right-aligned and formatted
    assert lines[3].startswith("stack ")
    assert lines[4].startswith("direct, in-process")
    assert lines[3].index("85.7") + len("85.7") == lines[4].index("12,345.0") + len("12,345.0")
    assert len({len(line) for line in lines[1:]}) == 1


def test_format_table_rejects_ragged_rows():
    with pytest.raises(ValueError):
        common.format_table(["a", "b"], [["only one"]])


def test_check_line():
    line, met = common.check_line("scaling", 3.4, 3)
    assert met and line == "GOAL scaling: 3.40x >= 3x: met"
    line, met = common.check_line("scaling", 2.0, 3)
    assert not met and line.endswith("NOT met")
    assert common.check_line("x", math.nan, 1)[1] is False


def test_free_port_is_bindable():
    import socket

    port = common.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_wait_http_gives_up_when_the_server_is_gone():
    port = common.free_port()  # nothing listens there
    with pytest.raises(RuntimeError, match="exited"):
        common.wait_http(f"http://127.0.0.1:{port}/v1/health", timeout=30, alive=lambda: False)
    with pytest.raises(TimeoutError):
        common.wait_http(f"http://127.0.0.1:{port}/v1/health", timeout=0.3, interval=0.05)
