"""What tracing costs on the HTTP path: the gateway benchmark's echo stack with telemetry
at sampling 1.0 (sqlite sink: every request traced through gateway, inference and
provider spans, its metrics stored) against the same stack without telemetry.

Both stacks run at once, each in its own subprocess and Ray instance, and this process
measures them in turn, cell by cell and round by round (the order flipped each round),
so that the machine's drifting load hits both alike; figures are medians over the rounds.
`--variants off,sampled-0,sampled-1` adds a stack with telemetry configured at sampling
0 (metrics still recorded, no spans).

    python bench/tracing_overhead.py [--quick] [--json PATH] [--duration S] [--rounds N]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from typing import Any

import _common as c
import gateway_overhead as go

VARIANTS: dict[str, float | None] = {"off": None, "sampled-0": 0.0, "sampled-1": 1.0}
MARK = "@@bench "


def stack_config(data_dir: str, sampling: float | None) -> dict[str, Any]:
    config = c.stack_config(data_dir, [c.ECHO_PROVIDER], [c.ECHO_MODEL])
    if sampling is not None:
        config["apis"].append("telemetry")
        config["providers"]["telemetry"] = [
            {
                "provider_id": "meta-reference",
                "provider_type": "inline::meta-reference",
                "config": {"sinks": ["sqlite"], "sampling_ratio": sampling},
            }
        ]
    return config


def child(variant: str) -> int:
    with tempfile.TemporaryDirectory(prefix="stackray-bench-tracing-") as tmp:
        with c.running_stack(stack_config(tmp, VARIANTS[variant])) as url:
            print(MARK + json.dumps({"url": url}), flush=True)
            sys.stdin.read()
    return 0


class Stack:
    """A child process serving one variant's stack (what `gateway_overhead` measures)."""

    def __init__(self, variant: str) -> None:
        self.setting = variant
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", variant],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                self.url = str(json.loads(line[len(MARK) :])["url"])
                return
        raise RuntimeError(f"the {variant} stack exited (code {self.proc.wait()})")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(120)


def recorded(stack: Stack) -> dict[str, Any]:
    """What the traced stack stored: provider calls counted and one trace's span count."""
    import time

    import httpx

    time.sleep(3)  # the last spans and points are written in batches
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        metrics = http.post(
            "/v1/telemetry/metrics/requests", json={"start_time": 0, "query_type": "instant"}
        ).json()["data"]
        echo = [{"key": "stackray.provider_id", "op": "eq", "value": "echo"}]
        traces = http.post(
            "/v1/telemetry/traces", json={"limit": 1, "attribute_filters": echo}
        ).json()["data"]
        spans = 0
        if traces:
            tree = http.post(f"/v1/telemetry/spans/{traces[0]['root_span_id']}/tree", json={})
            spans = len(tree.json()["data"])
    return {
        "requests_counted": int(sum(p["value"] for s in metrics for p in s["values"])),
        "spans_per_trace": spans,
    }


def run_rounds(stacks: dict[str, Stack], rounds: int, duration: float) -> dict[Any, Any]:
    samples: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in range(rounds):
        for conc in go.CONCURRENCY:
            for endpoint in go.ENDPOINTS:
                order = list(stacks) if r % 2 == 0 else list(reversed(stacks))
                for variant in order:
                    summary = asyncio.run(
                        go.measure_http(stacks[variant], "stack", endpoint, conc, duration)
                    )
                    samples.setdefault((variant, endpoint, conc), []).append(summary)
                    print(
                        f"  round {r + 1} {variant:<10} {endpoint:<11} c={conc:<3}"
                        f"{summary['throughput_rps'] or 0:8.1f} req/s  "
                        f"p50 {summary['p50_ms'] or 0:7.2f} ms"
                        + (f"  errors {summary['errors']}" if summary["errors"] else ""),
                        flush=True,
                    )
    return {key: go.aggregate(v) for key, v in samples.items()}


def cpu_total(row: dict[str, Any]) -> float:
    cpu = row.get("cpu_ms_per_request") or {}
    return float(sum(v for k, v in cpu.items() if k != "client")) if cpu else float("nan")


def table(results: dict[Any, Any], variants: list[str]) -> tuple[str, dict[str, float]]:
    rows, ratios = [], {}
    for conc in go.CONCURRENCY:
        for endpoint in go.ENDPOINTS:
            base = results[("off", endpoint, conc)]
            row: list[Any] = [f"{endpoint} c={conc}", go.num(base, "throughput_rps")]
            for v in variants[1:]:
                traced = results[(v, endpoint, conc)]
                ratio = c.ratio(go.num(traced, "throughput_rps"), go.num(base, "throughput_rps"))
                ratios[f"{v} {endpoint} c={conc}"] = ratio
                row += [go.num(traced, "throughput_rps"), c.fmt_ratio(ratio)]
            row += [c.fmt(go.num(results[(v, endpoint, conc)], "p50_ms"), 2) for v in variants]
            row += [c.fmt(cpu_total(results[(v, endpoint, conc)]), 2) for v in variants]
            rows.append(row)
    headers = ["path", "off req/s"]
    for v in variants[1:]:
        headers += [f"{v} req/s", f"{v}/off"]
    headers += [f"{v} p50 ms" for v in variants] + [f"{v} CPU ms/req" for v in variants]
    return c.format_table(headers, rows, title="Tracing on vs off, same run"), ratios


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="seconds per cell (3)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    parser.add_argument(
        "--variants", default="off,sampled-1", help="comma-separated: off, sampled-0, sampled-1"
    )
    parser.add_argument("--child", default=None, help=go.argparse_suppress())
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    variants = args.variants.split(",")
    if variants[0] != "off" or any(v not in VARIANTS for v in variants):
        parser.error("--variants starts with 'off' and names variants of " + ", ".join(VARIANTS))
    duration = args.duration or (1.0 if args.quick else 3.0)
    rounds = args.rounds or (1 if args.quick else 3)
    print(c.describe_environment(), flush=True)
    stacks: dict[str, Stack] = {}
    try:
        for v in variants:
            print(f"starting the {v} stack ...", flush=True)
            stacks[v] = Stack(v)
        results = run_rounds(stacks, rounds, duration)
        stored = recorded(stacks[variants[-1]]) if variants[-1] != "off" else {}
    finally:
        for stack in stacks.values():
            stack.stop()
    text, ratios = table(results, variants)
    print()
    print(text)
    print()
    for name, ratio in ratios.items():
        print(f"{name}: throughput {100 * (ratio - 1):+.1f}% vs off (goal: no worse than -5%)")
    if stored:
        print(
            f"{variants[-1]} stack stored: {stored['requests_counted']} provider calls counted, "
            f"{stored['spans_per_trace']} spans in a trace"
        )
    print(
        "CPU ms/req: all stack processes (proxy, gateway, inference, telemetry, Ray) per request."
    )
    c.write_json(
        args.json,
        {
            "benchmark": "tracing_overhead",
            "duration_s": duration,
            "rounds": rounds,
            "variants": variants,
            "ratios": ratios,
            "stored": stored,
            "results": [
                {"variant": v, "endpoint": e, "concurrency": n, **row}
                for (v, e, n), row in results.items()
            ],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
