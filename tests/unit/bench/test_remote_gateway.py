"""bench/remote_gateway.py's own parts (no Ray): the loopback backend, the load processes,
and the report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.fixture(scope="module")
def gateway_bench():
    sys.path.insert(0, str(BENCH))
    try:
        import remote_gateway

        yield remote_gateway
    finally:
        sys.path.remove(str(BENCH))


def test_backend_and_load_processes_measure_the_delay(gateway_bench):
    g = gateway_bench
    backend = g.Child(["--backend", "0.05"])
    try:
        path, body = g.targets("50ms")["direct"]
        result = g.measure(backend.url, path, body, conc=4, seconds=1.0, procs=2)
    finally:
        backend.stop(kill=True)
    assert result["errors"] == 0
    assert 50 <= result["p50_ms"] < 80
    # 4 connections, 50 ms each: about 80 requests per second.
    assert 60 <= result["throughput_rps"] <= 81


def test_report_checks_the_goals(gateway_bench):
    g = gateway_bench
    rows = []
    for backend in g.BACKENDS:
        for conc in g.CONCURRENCY:
            for target, rps in (("direct", 1000.0), ("openai", 300.0), ("llama-stack", 950.0)):
                rows.append(
                    {
                        "backend": backend,
                        "target": target,
                        "concurrency": conc,
                        "throughput_rps": rps,
                        "p50_ms": 1.0,
                        "p99_ms": 2.0,
                        "load_cpu_us_per_request": 10.0,
                        "errors": 0,
                    }
                )
    table, lines, met = g.report(rows)
    assert "zero llama-stack" in table
    assert not met
    assert any("llama-stack c=64 vs direct: 0.95x >= 0.9x: met" in line for line in lines)
    assert any("openai c=64 vs direct: 0.30x >= 0.9x: NOT met" in line for line in lines)
