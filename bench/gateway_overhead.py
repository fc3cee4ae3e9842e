"""What the HTTP path of the stack costs in front of a zero-latency provider.

The external `remote::echo` provider answers instantly, so everything measured through
HTTP is the stack's own cost: Serve proxy -> gateway replica (FastAPI, validation,
serialization, the inference router and its registry lookup) -> provider, and back.
The baseline is the same router and provider objects called in this process
(`build_local_stack`), measured in the same run. A trivial Serve deployment (one hop,
constant answer) is measured too, as the floor of any Serve HTTP request.

Each Serve setting's stack runs in its own subprocess (its own Ray instance), because
`RAY_SERVE_THROUGHPUT_OPTIMIZED` has to be in the environment before `ray.init` for the
replicas to inherit it. Both stacks run at once and this process measures them in turn,
cell by cell and round by round, so that the machine's drifting load hits both alike;
figures are medians over the rounds.

    python bench/gateway_overhead.py [--quick] [--json PATH] [--duration S] [--rounds N]
        [--settings both|default|throughput-optimized] [--before CHECKOUT]

`--before CHECKOUT` also runs each setting's stack from another checkout of the project
(say a worktree of an earlier commit), measured in the same rounds, cell by cell with
this checkout's: a before/after of a change in one run.
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


# ---- children: one stack per Serve setting ----------------------------------------------

MARK = "@@bench "


def child() -> int:
    """Serve the echo stack and a floor app; print the URL; stop when stdin closes."""
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="stackray-bench-") as tmp:
        config = c.stack_config(tmp, [c.ECHO_PROVIDER], [c.ECHO_MODEL])
        floor = {"/_floor": c.serve_floor_app()}
        with c.running_stack(config, extra_apps=floor, timings=timings) as url:
            print(MARK + json.dumps({"url": url}), flush=True)
            sys.stdin.read()
    print(MARK + json.dumps({k: round(v, 2) for k, v in timings.items()}), flush=True)
    return 0


BEFORE = " @before"


def setting_of(label: str) -> str:
    return label.removesuffix(BEFORE)


class Stack:
    """A child process serving one setting's stack (of another checkout: `tree`)."""

    def __init__(self, setting: str, tree: Path | None = None) -> None:
        env = {**os.environ, "RAY_SERVE_THROUGHPUT_OPTIMIZED": SETTINGS[setting]}
        if SETTINGS[setting] == "1":
            # Direct ingress otherwise drains the ingress replica for 30 s on shutdown.
            env.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", DRAINING_S)
        script = __file__
        if tree is not None:
            script = str(tree / "bench" / "gateway_overhead.py")
            # That checkout's code, and its own echo provider.
            echo = tree / "tests" / "external" / "stackray-echo-provider"
            env["PYTHONPATH"] = os.pathsep.join([str(tree), str(echo), env.get("PYTHONPATH", "")])
        self.setting = setting
        self.proc = subprocess.Popen(
            [sys.executable, script, "--child"],
            # Ray puts the driver's working directory first on its workers' path.
            cwd=str(tree) if tree is not None else None,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = str(self._message()["url"])

    def _message(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return dict(json.loads(line[len(MARK) :]))
        raise RuntimeError(f"the {self.setting} stack exited (code {self.proc.wait()})")

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            timings = self._message()
        except RuntimeError:
            timings = {}
        self.proc.wait(120)
        return timings


# ---- measuring -----------------------------------------------------------------------------


async def measure_direct(data_dir: Path, seconds: float) -> dict[tuple[str, str, int], Any]:
    """The same router and provider as the stack's, called in this process."""
    from stackray.api.inference import ChatCompletionRequest, OpenAIChatCompletionRequest
    from stackray.runtime.config import parse_config
    from stackray.runtime.envsubst import interpolate
    from stackray.runtime.graph import build_local_stack

    config = c.stack_config(data_dir, [c.ECHO_PROVIDER], [c.ECHO_MODEL])
    routers = await build_local_stack(parse_config(interpolate(config), "<bench>"))
    router = routers["inference"]
    # The router object behind its in-process client, and its (guarded) echo provider.
    provider = router.transport.target.providers["echo"]
    ls_req = ChatCompletionRequest.model_validate(ENDPOINTS["llama-stack"][1])
    oa_req = OpenAIChatCompletionRequest.model_validate(ENDPOINTS["openai"][1])
    calls = {
        ("direct", "llama-stack"): lambda: router.chat_completion(ls_req),
        ("direct", "openai"): lambda: router.openai_chat_completion(oa_req),
        ("provider", "llama-stack"): lambda: provider.chat_completion(ls_req),
    }
    out = {}
    for conc in CONCURRENCY:
        for (target, endpoint), call in calls.items():
            await c.run_load(call, conc, requests=2 * conc)
            result = await c.run_load(call, conc, duration=seconds)
            out[(target, endpoint, conc)] = result.summary()
    return out


async def measure_http(stack: Stack, target: str, endpoint: str, conc: int, seconds: float) -> Any:
    path, body = ("/_floor", {}) if target == "serve-floor" else ENDPOINTS[endpoint]
    async with c.http_client(stack.url, conc) as client:
        call = c.http_call(client, path, body)
        await c.run_load(call, conc, requests=2 * conc)
        before, client_before = c.cpu_by_process(stack.proc.pid), time.process_time()
        result = await c.run_load(call, conc, duration=seconds)
        cpu = c.cpu_delta(before, c.cpu_by_process(stack.proc.pid))
        cpu = {("stack driver" if k == "driver" else k): v for k, v in cpu.items()}
        cpu["client"] = time.process_time() - client_before
    summary = result.summary()
    if result.requests:
        summary["cpu_ms_per_request"] = {
            k: round(1000 * v / result.requests, 3) for k, v in sorted(cpu.items())
        }
    return summary


def aggregate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds (errors summed)."""
    out = dict(samples[-1])
    for key in ("throughput_rps", "p50_ms", "p99_ms"):
        values = [s[key] for s in samples if s.get(key) is not None]
        out[key] = round(c.median(values), 3) if values else None
    out["errors"] = sum(s.get("errors", 0) for s in samples)
    cpus = [s["cpu_ms_per_request"] for s in samples if s.get("cpu_ms_per_request")]
    if cpus:
        keys = sorted({k for cpu in cpus for k in cpu})
        out["cpu_ms_per_request"] = {
            k: round(c.median([cpu.get(k, 0.0) for cpu in cpus]), 3) for k in keys
        }
    out["rounds"] = samples
    return out


def run_rounds(
    stacks: dict[str, Stack], rounds: int, duration: float
) -> dict[str, list[dict[str, Any]]]:
    """Alternate the settings cell by cell, so drift in the machine's load hits each alike."""
    samples: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    direct: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="stackray-bench-direct-") as tmp:
        for r in range(rounds):
            for key, summary in asyncio.run(
                measure_direct(Path(tmp) / str(r), duration / 2)
            ).items():
                direct.setdefault(key, []).append(summary)
            for conc in CONCURRENCY:
                for target, endpoint in [("serve-floor", "-")] + [("stack", e) for e in ENDPOINTS]:
                    order = list(stacks) if r % 2 == 0 else list(reversed(stacks))
                    for setting in order:
                        summary = asyncio.run(
                            measure_http(stacks[setting], target, endpoint, conc, duration)
                        )
                        samples.setdefault((setting, target, endpoint, conc), []).append(summary)
                        print(
                            f"  round {r + 1} {setting:<21} {target:<11} {endpoint:<11} c={conc:<3}"
                            f"{summary['throughput_rps'] or 0:8.1f} req/s  "
                            f"p50 {summary['p50_ms'] or 0:7.2f} ms"
                            + (
                                f"  errors {summary['errors']}: {summary['first_error']}"
                                if summary["errors"]
                                else ""
                            ),
                            flush=True,
                        )
    results: dict[str, list[dict[str, Any]]] = {}
    for setting in stacks:
        rows = [
            {"target": t, "endpoint": e, **aggregate(v)} for (t, e, _), v in sorted(direct.items())
        ]
        rows += [
            {"target": t, "endpoint": e, **aggregate(v)}
            for (s_, t, e, _), v in sorted(samples.items())
            if s_ == setting
        ]
        results[setting] = rows
    return results


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


def overhead_table(label: str, rows: list[dict[str, Any]]) -> str:
    setting = setting_of(label)
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
        title=f"RAY_SERVE_THROUGHPUT_OPTIMIZED={SETTINGS[setting]} ({label})",
    )


CPU_GROUPS = [
    ("proxy", "ProxyActor"),
    ("gateway", "stackray:gateway"),
    ("floor", ":floor"),
    ("client", "client"),
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
        title=f"CPU ms per request by process ({setting}; client = the load generator)",
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


def before_after_table(
    label: str, after: list[dict[str, Any]], before: list[dict[str, Any]]
) -> str:
    table = []
    for conc in CONCURRENCY:
        for endpoint in ENDPOINTS:
            b, a = find(before, "stack", endpoint, conc), find(after, "stack", endpoint, conc)
            cpu_b, cpu_a = cpu_groups(b)[-1], cpu_groups(a)[-1]
            table.append(
                [
                    f"{endpoint} c={conc}",
                    num(b, "throughput_rps"),
                    num(a, "throughput_rps"),
                    c.fmt_ratio(c.ratio(num(a, "throughput_rps"), num(b, "throughput_rps"))),
                    c.fmt(num(b, "p50_ms"), 2),
                    c.fmt(num(a, "p50_ms"), 2),
                    c.fmt(num(b, "p99_ms"), 2),
                    c.fmt(num(a, "p99_ms"), 2),
                    c.fmt(cpu_b, 2),
                    c.fmt(cpu_a, 2),
                ]
            )
    return c.format_table(
        [
            "path",
            "before req/s",
            "after req/s",
            "after/before",
            "before p50",
            "after p50",
            "before p99",
            "after p99",
            "before CPU ms/req",
            "after CPU ms/req",
        ],
        table,
        title=f"before (--before checkout) and after (this checkout), {label}, same rounds",
    )


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds per HTTP measurement (default 3, quick 1)",
    )
    parser.add_argument(
        "--settings",
        choices=["both", *SETTINGS],
        default=None,
        help="which Serve settings to run (default both; --quick: default only)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds over every cell (default 2, quick 1)"
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another checkout whose stack is measured in the same rounds (before/after)",
    )
    parser.add_argument("--child", action="store_true", help=argparse_suppress())
    args = parser.parse_args(argv)
    duration = args.duration or (1.0 if args.quick else 3.0)
    if args.child:
        return child()

    print(c.describe_environment(), flush=True)
    which = args.settings or ("default" if args.quick else "both")
    settings = list(SETTINGS) if which == "both" else [which]
    rounds = args.rounds or (1 if args.quick else 2)
    stacks: dict[str, Stack] = {}
    timings: dict[str, dict[str, Any]] = {}
    try:
        for setting in settings:
            print(f"starting the {setting} stack ...", flush=True)
            stacks[setting] = Stack(setting)
            if args.before is not None:
                print(f"starting the {setting} stack of {args.before} ...", flush=True)
                stacks[setting + BEFORE] = Stack(setting, args.before.resolve())
        results = run_rounds(stacks, rounds, duration)
    finally:
        for setting, stack in stacks.items():
            timings[setting] = stack.stop()

    print()
    for setting, rows in results.items():
        print(overhead_table(setting, rows))
        print()
        print(cpu_table(setting, rows))
        print()
    if "default" in results and "throughput-optimized" in results:
        print(settings_table(results))
        print()
    for label in list(results):
        if label + BEFORE in results:
            print(before_after_table(label, results[label], results[label + BEFORE]))
            print()
    for setting in results:
        t = timings.get(setting, {})
        print(
            f"{setting}: stack started in {t.get('start_s', '-')} s, "
            f"serve.shutdown() took {t.get('shutdown_s', '-')} s"
        )
    if any(setting_of(label) == "throughput-optimized" for label in results):
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
        {
            "benchmark": "gateway_overhead",
            "duration_s": duration,
            "rounds": rounds,
            "timings": timings,
            "results": results,
        },
    )
    return 0


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
