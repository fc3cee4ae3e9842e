"""What the HTTP path of the stack costs in front of a zero-latency provider.

The external `remote::echo` provider answers instantly, so everything measured through
HTTP is the stack's own cost: Serve proxy -> gateway replica (FastAPI, validation,
serialization) -> inference replica (router, registry lookup) -> provider, and back.
The baseline is the same router and provider objects called in this process
(`build_local_stack`), measured in the same run. A trivial Serve deployment (one hop,
constant answer) is measured too, as the floor of any Serve HTTP request.

Each Serve setting runs in its own subprocess, because `RAY_SERVE_THROUGHPUT_OPTIMIZED`
has to be in the environment before `ray.init` for the replicas to inherit it.

    python bench/gateway_overhead.py [--quick] [--json PATH] [--duration S]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

SETTINGS = {"default": "0", "throughput-optimized": "1"}
CONCURRENCY = (1, 32)
DRAINING_S = "1"
MESSAGES = [{"role": "user", "content": "hello there"}]
ENDPOINTS = {
    "llama-stack": (
        "/v1/inference/chat-completion",
        {"model_id": "echo-model", "messages": MESSAGES},
    ),
    "openai": ("/v1/chat/completions", {"model": "echo-model", "messages": MESSAGES}),
}


# ---- child: one Serve setting ---------------------------------------------------------------


async def measure(base_url: str, data_dir: Path, duration: float) -> list[dict[str, Any]]:
    """Every path at every concurrency; in-process paths get half the time (they are steady)."""
    from stackray.api.inference import ChatCompletionRequest, OpenAIChatCompletionRequest
    from stackray.runtime.config import parse_config
    from stackray.runtime.envsubst import interpolate
    from stackray.runtime.stack import build_local_stack

    # The same router and provider as the stack's, in this process, with its own store.
    config = c.stack_config(data_dir, [c.ECHO_PROVIDER], [c.ECHO_MODEL])
    routers = await build_local_stack(parse_config(interpolate(config), "<bench>"))
    router = routers["inference"]
    provider = router.providers["echo"]
    ls_req = ChatCompletionRequest.model_validate(ENDPOINTS["llama-stack"][1])
    oa_req = OpenAIChatCompletionRequest.model_validate(ENDPOINTS["openai"][1])
    direct = {
        "llama-stack": lambda: router.chat_completion(ls_req),
        "openai": lambda: router.openai_chat_completion(oa_req),
    }

    rows: list[dict[str, Any]] = []

    async def run(target: str, endpoint: str, conc: int, call: c.Call, warmup: int) -> None:
        await c.run_load(call, conc, requests=warmup)
        before = c.cpu_by_process()
        seconds = duration / 2 if target in ("direct", "provider") else duration
        result = await c.run_load(call, conc, duration=seconds)
        cpu = c.cpu_delta(before, c.cpu_by_process())
        row = {"target": target, "endpoint": endpoint, **result.summary()}
        if result.requests:
            row["cpu_ms_per_request"] = {
                k: round(1000 * v / result.requests, 3) for k, v in sorted(cpu.items())
            }
        rows.append(row)
        print(
            f"  {target:<14} {endpoint:<12} c={conc:<3} {result.throughput:8.1f} req/s  "
            f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
            + (f"  errors {result.errors}: {result.first_error}" if result.errors else ""),
            flush=True,
        )

    for conc in CONCURRENCY:
        async with c.http_client(base_url, conc) as client:
            await run("serve-floor", "-", conc, c.http_call(client, "/_floor", {}), warmup=2 * conc)
            for endpoint, (path, body) in ENDPOINTS.items():
                await run("stack", endpoint, conc, c.http_call(client, path, body), 2 * conc)
                await run("direct", endpoint, conc, direct[endpoint], warmup=conc)
        await run(
            "provider",
            "llama-stack",
            conc,
            lambda: provider.chat_completion(ls_req),
            warmup=conc,
        )
    return rows


def child(duration: float, out: str) -> int:
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="stackray-bench-") as tmp:
        config = c.stack_config(Path(tmp) / "stack", [c.ECHO_PROVIDER], [c.ECHO_MODEL])
        floor = {"/_floor": c.serve_floor_app()}
        with c.running_stack(config, extra_apps=floor, timings=timings) as url:
            time.sleep(3)  # let the controller and agents settle after the deploy
            rows = asyncio.run(measure(url, Path(tmp) / "direct", duration))
    rows.append({"target": "timings", **{k: round(v, 2) for k, v in timings.items()}})
    Path(out).write_text(json.dumps(rows))
    return 0


# ---- parent: run the settings, print the tables ------------------------------------------


def find(rows: list[dict[str, Any]], target: str, endpoint: str, conc: int) -> dict[str, Any]:
    for row in rows:
        if (row.get("target"), row.get("endpoint"), row.get("concurrency")) == (
            target,
            endpoint,
            conc,
        ):
            return row
    return {}


def num(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float("nan") if value is None else float(value)


def overhead_table(setting: str, rows: list[dict[str, Any]]) -> str:
    table = []
    for conc in CONCURRENCY:
        for endpoint in ENDPOINTS:
            d, s = find(rows, "direct", endpoint, conc), find(rows, "stack", endpoint, conc)
            table.append(
                [
                    f"{endpoint} c={conc}",
                    num(d, "throughput_rps"),
                    num(s, "throughput_rps"),
                    c.fmt_ratio(c.ratio(num(s, "throughput_rps"), num(d, "throughput_rps"))),
                    c.fmt(num(d, "p50_ms"), 3),
                    c.fmt(num(s, "p50_ms"), 2),
                    c.fmt(num(s, "p50_ms") - num(d, "p50_ms"), 2),
                    c.fmt(num(s, "p99_ms") - num(d, "p99_ms"), 2),
                    s.get("errors", "-"),
                ]
            )
        floor = find(rows, "serve-floor", "-", conc)
        prov = find(rows, "provider", "llama-stack", conc)
        table.append(
            [
                f"serve floor c={conc}",
                "-",
                num(floor, "throughput_rps"),
                "-",
                "-",
                c.fmt(num(floor, "p50_ms"), 2),
                "-",
                "-",
                floor.get("errors", "-"),
            ]
        )
        table.append(
            [
                f"provider only c={conc}",
                num(prov, "throughput_rps"),
                "-",
                "-",
                c.fmt(num(prov, "p50_ms"), 3),
                "-",
                "-",
                "-",
                "-",
            ]
        )
    return c.format_table(
        [
            "path",
            "direct req/s",
            "stack req/s",
            "stack/direct",
            "direct p50 ms",
            "stack p50 ms",
            "added p50 ms",
            "added p99 ms",
            "errors",
        ],
        table,
        title=f"RAY_SERVE_THROUGHPUT_OPTIMIZED={SETTINGS[setting]} ({setting})",
    )


CPU_GROUPS = [
    ("proxy", "ProxyActor"),
    ("gateway", "stackray:gateway"),
    ("inference", "stackray:inference"),
    ("floor", ":floor"),
    ("client", "driver"),
]


def cpu_groups(row: dict[str, Any]) -> list[float]:
    """CPU ms per request of `row` by part of the path, then the rest of Ray, then the total."""
    cpu = dict(row.get("cpu_ms_per_request") or {})
    if not cpu:
        return [float("nan")] * (len(CPU_GROUPS) + 2)
    total = sum(cpu.values())
    out = []
    for _, key in CPU_GROUPS:
        out.append(sum(v for k, v in list(cpu.items()) if key in k))
        cpu = {k: v for k, v in cpu.items() if key not in k}
    return [*out, sum(cpu.values()), total]


def cpu_table(setting: str, rows: list[dict[str, Any]]) -> str:
    table = []
    for conc in CONCURRENCY:
        for target, endpoint in [("serve-floor", "-")] + [("stack", e) for e in ENDPOINTS]:
            row = find(rows, target, endpoint, conc)
            name = f"{endpoint} c={conc}" if target == "stack" else f"serve floor c={conc}"
            table.append([name, *(c.fmt(v, 2) for v in cpu_groups(row))])
    return c.format_table(
        ["path", *(g for g, _ in CPU_GROUPS), "other ray", "total"],
        table,
        title=f"CPU ms per request by process ({setting}; client = this process's load generator)",
    )


def settings_table(results: dict[str, list[dict[str, Any]]]) -> str:
    base, opt = results["default"], results["throughput-optimized"]
    table = []
    for conc in CONCURRENCY:
        for target, endpoint in [("stack", e) for e in ENDPOINTS] + [("serve-floor", "-")]:
            b, o = find(base, target, endpoint, conc), find(opt, target, endpoint, conc)
            # Each setting's stack figure relative to its own in-run direct baseline.
            bd = num(find(base, "direct", endpoint, conc), "throughput_rps")
            od = num(find(opt, "direct", endpoint, conc), "throughput_rps")
            name = f"{endpoint} c={conc}" if target == "stack" else f"serve floor c={conc}"
            table.append(
                [
                    name,
                    num(b, "throughput_rps"),
                    num(o, "throughput_rps"),
                    c.fmt_ratio(c.ratio(num(o, "throughput_rps"), num(b, "throughput_rps"))),
                    c.fmt(num(b, "p50_ms"), 2),
                    c.fmt(num(o, "p50_ms"), 2),
                    c.fmt(num(b, "p99_ms"), 2),
                    c.fmt(num(o, "p99_ms"), 2),
                    c.fmt_ratio(c.ratio(num(b, "throughput_rps"), bd))
                    if target == "stack"
                    else "-",
                    c.fmt_ratio(c.ratio(num(o, "throughput_rps"), od))
                    if target == "stack"
                    else "-",
                ]
            )
    return c.format_table(
        [
            "path",
            "default req/s",
            "optimized req/s",
            "opt/default",
            "default p50",
            "opt p50",
            "default p99",
            "opt p99",
            "default vs direct",
            "opt vs direct",
        ],
        table,
        title="RAY_SERVE_THROUGHPUT_OPTIMIZED: 0 (default) vs 1, through the stack",
    )


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per HTTP measurement (default 4, quick 1)",
    )
    parser.add_argument(
        "--settings",
        choices=["both", *SETTINGS],
        default=None,
        help="which Serve settings to run (default both; --quick: default only)",
    )
    parser.add_argument("--child", metavar="OUT", help=argparse_suppress())
    args = parser.parse_args(argv)
    duration = args.duration or (1.0 if args.quick else 4.0)
    if args.child:
        return child(duration, args.child)

    print(c.describe_environment(), flush=True)
    which = args.settings or ("default" if args.quick else "both")
    settings = list(SETTINGS) if which == "both" else [which]
    results: dict[str, list[dict[str, Any]]] = {}
    for setting in settings:
        print(f"\n== {setting}: RAY_SERVE_THROUGHPUT_OPTIMIZED={SETTINGS[setting]}", flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            env = {**os.environ, "RAY_SERVE_THROUGHPUT_OPTIMIZED": SETTINGS[setting]}
            if SETTINGS[setting] == "1":
                # Direct ingress otherwise drains the ingress replica for 30 s on shutdown.
                env.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", DRAINING_S)
            cmd = [sys.executable, __file__, "--child", out.name, "--duration", str(duration)]
            proc = subprocess.run(cmd, env=env)
            if proc.returncode != 0:
                print(f"{setting}: the measuring process failed (exit {proc.returncode})")
                return 1
            results[setting] = json.loads(Path(out.name).read_text())

    print()
    for setting, rows in results.items():
        print(overhead_table(setting, rows))
        print()
        print(cpu_table(setting, rows))
        print()
    if len(results) == 2:
        print(settings_table(results))
        print()
    for setting, rows in results.items():
        t = next((r for r in rows if r["target"] == "timings"), {})
        print(
            f"{setting}: stack started in {t.get('start_s', '-')} s, "
            f"serve.shutdown() took {t.get('shutdown_s', '-')} s"
        )
    if "throughput-optimized" in results:
        print(
            "throughput-optimized ran with RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S="
            f"{os.environ.get('RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S', DRAINING_S)}; "
            "with Serve's default (30) every shutdown waits about 30 s."
        )
    print(
        "stack/direct: the stack's throughput over the same router called in-process; "
        "added ms: stack minus direct latency.\n"
        "serve floor: a one-deployment Serve app answering a constant (no FastAPI, one hop)."
    )
    c.write_json(
        args.json,
        {"benchmark": "gateway_overhead", "duration_s": duration, "results": results},
    )
    return 0


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
