"""The gateway's cost in front of a remote OpenAI-compatible backend.

A loopback backend process speaks OpenAI's `/v1/chat/completions` (and `/v1/models`),
answering a constant completion at once or after 50 ms. The stack runs in its own process
under real Ray Serve, with two `remote::vllm` providers pointing at the two backends.
The load comes from separate processes (raw keep-alive HTTP/1.1 on uvloop, a few
microseconds of CPU per request), which hit, cell by cell, the backend directly and the
stack's two routes to it:

- `direct`: POST the backend's /v1/chat/completions;
- `openai`: POST the stack's /v1/openai/v1/chat/completions (passed through);
- `llama-stack`: POST the stack's /v1/inference/chat-completion (translated both ways).

at concurrency 1, 16 and 64. Rounds alternate the order of the targets, so drift in the
machine's load hits each alike; figures are medians over rounds. The load generator's
own CPU per request is reported, to show it is not what limits the figures.

    python bench/remote_gateway.py [--quick] [--json PATH] [--duration S] [--rounds N]
        [--gateway-replicas N] [--load-procs N]
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

CONCURRENCY = (1, 16, 64)
BACKENDS = {"zero": 0.0, "50ms": 0.05}
LLAMA_STACK_BASELINE = {1: 72.0, 16: 40.0, 64: 48.0}
"""Llama Stack 0.2.12's server before a zero-latency backend on this machine (req/s)."""
MARK = "@@bench "
MESSAGES = [{"role": "user", "content": "hello there"}]


def _model(backend: str) -> str:
    return f"{backend}-model"


def targets(backend: str) -> dict[str, tuple[str, dict[str, Any]]]:
    model = _model(backend)
    return {
        "direct": ("/v1/chat/completions", {"model": model, "messages": MESSAGES}),
        "openai": ("/v1/openai/v1/chat/completions", {"model": model, "messages": MESSAGES}),
        "llama-stack": ("/v1/inference/chat-completion", {"model_id": model, "messages": MESSAGES}),
    }


# ---- the backend: a fast OpenAI-compatible loopback server --------------------------------


def backend_main(delay: float) -> int:
    """Serve /v1/models and /v1/chat/completions on a free port; print it; run until killed."""
    import httptools
    import uvloop

    def answer(model: bytes) -> bytes:
        return json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 1700000000,
                "model": model.decode(),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello! How can I help?"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
            }
        ).encode()

    models = json.dumps(
        {
            "object": "list",
            "data": [{"id": _model(b), "object": "model", "owned_by": "bench"} for b in BACKENDS],
        }
    ).encode()
    chats = {name: answer(_model(name).encode()) for name in BACKENDS}

    def response(body: bytes) -> bytes:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        return head % len(body) + body

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.url = b""
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_url(self, url: bytes) -> None:
            self.url = url

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            path, body = self.url.split(b"?")[0], b"".join(self.body)
            self.body = []
            if path.endswith(b"/models"):
                out = response(models)
            else:
                name = "50ms" if b'"50ms-model"' in body else "zero"
                out = response(chats[name])
            if delay:
                loop.call_later(delay, self._write, out)
            else:
                self.transport.write(out)

        def _write(self, data: bytes) -> None:
            if not self.transport.is_closing():
                self.transport.write(data)

    uvloop.install()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(Protocol, "127.0.0.1", 0, backlog=1024, reuse_address=True)
    )
    port = server.sockets[0].getsockname()[1]
    print(MARK + json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    loop.run_forever()
    return 0


# ---- the load generator: raw keep-alive HTTP/1.1 ---------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status


def load_main(
    url: str, path: str, body: str, conc: int, start_at: float, stop_at: float, out: str
) -> int:
    """Run `conc` connections from `start_at` to `stop_at` (wall clock); write the
    latencies to the file `out`."""
    import uvloop

    host, port = url.removeprefix("http://").split(":")
    payload = body.encode()
    request = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    latencies: list[float] = []
    errors: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
        try:
            for _ in range(2):  # warm-up, unrecorded
                writer.write(request)
                await _read_response(reader)
            while time.time() < start_at:
                await asyncio.sleep(min(0.01, max(0.0, start_at - time.time())))
            while time.time() < stop_at:
                t0 = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                if status != 200:
                    errors.append(f"HTTP {status}")
                    continue
                latencies.append(time.perf_counter() - t0)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()

    async def main() -> None:
        await asyncio.gather(*(connection() for _ in range(conc)))

    cpu0 = time.process_time()
    uvloop.run(main())
    cpu = time.process_time() - cpu0
    result = {"latencies": latencies, "errors": errors[:3], "n_errors": len(errors), "cpu_s": cpu}
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


def measure(
    url: str, path: str, body: dict[str, Any], conc: int, seconds: float, procs: int
) -> dict[str, Any]:
    """One cell: `conc` connections spread over `procs` load processes."""
    procs = max(1, min(procs, conc))
    shares = [conc // procs + (1 if i < conc % procs else 0) for i in range(procs)]
    start_at = time.time() + 1.5  # room to start the processes and warm up
    stop_at = start_at + seconds
    tmp = tempfile.mkdtemp(prefix="stackray-bench-load-")
    outs = [os.path.join(tmp, f"{i}.json") for i in range(procs)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--load",
                url,
                path,
                json.dumps(body),
                str(n),
                repr(start_at),
                repr(stop_at),
                out,
            ]
        )
        for n, out in zip(shares, outs, strict=True)
    ]
    latencies: list[float] = []
    errors: list[str] = []
    n_errors = 0
    cpu = 0.0
    for child, out in zip(children, outs, strict=True):
        if child.wait(timeout=seconds + 120) != 0 or not os.path.exists(out):
            raise RuntimeError(f"a load process failed (code {child.returncode})")
        with open(out) as f:
            data = json.load(f)
        os.unlink(out)
        latencies += data["latencies"]
        errors += data["errors"]
        n_errors += data["n_errors"]
        cpu += data["cpu_s"]
    os.rmdir(tmp)
    n = len(latencies)
    return {
        "concurrency": conc,
        "requests": n,
        "errors": n_errors,
        "first_error": errors[0] if errors else None,
        "throughput_rps": round(n / seconds, 1),
        "p50_ms": round(c.percentile(latencies, 50) * 1000, 2) if n else None,
        "p99_ms": round(c.percentile(latencies, 99) * 1000, 2) if n else None,
        "load_cpu_us_per_request": round(1e6 * cpu / n, 1) if n else None,
    }


# ---- the stack ----------------------------------------------------------------------------------


def stack_main(backend_urls: dict[str, str], gateway: int) -> int:
    with tempfile.TemporaryDirectory(prefix="stackray-bench-remote-") as tmp:
        providers = [
            {
                "provider_id": name,
                "provider_type": "remote::vllm",
                "config": {"url": f"{backend_urls[name]}/v1", "api_token": "bench"},
            }
            for name in BACKENDS
        ]
        models = [{"model_id": _model(n), "provider_id": n, "model_type": "llm"} for n in BACKENDS]
        # The inference router runs in each gateway replica: nothing else to deploy.
        deployments = {"gateway": {"num_replicas": gateway}}
        config = c.stack_config(tmp, providers, models, deployments=deployments)
        with c.running_stack(config) as url:
            print(MARK + json.dumps({"url": url}), flush=True)
            sys.stdin.read()
    return 0


class Child:
    """A child process of this script that prints its URL, then runs until stopped."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                self.url = str(json.loads(line[len(MARK) :])["url"])
                return
        raise RuntimeError(f"{args[0]} exited (code {self.proc.wait()})")

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        self.proc.wait(120)


def _busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _busy_share(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """The share of the machine's CPU time that was busy between two `_busy()` readings
    (every process, other users' included)."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 2) if total > 0 else None


def _short(name: str) -> str:
    for key, short in (
        ("Proxy", "proxy"),
        ("gateway", "gateway"),
        ("driver", "stack driver"),
    ):
        if key in name:
            return short
    return name


# ---- the run -------------------------------------------------------------------------------------


def run(args: Any) -> dict[str, Any]:
    backends = {name: Child(["--backend", str(delay)]) for name, delay in BACKENDS.items()}
    env = {
        **os.environ,
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": args.throughput_optimized,
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
    }
    # One backend process per latency; each of the stack's providers points at its own.
    stack = None
    try:
        stack = Child(
            [
                "--stack",
                json.dumps({n: b.url for n, b in backends.items()}),
                str(args.gateway_replicas),
            ],
            env=env,
        )
        samples: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for backend in BACKENDS:
                for conc in CONCURRENCY:
                    order = list(targets(backend))
                    if r % 2:
                        order.reverse()
                    for target in order:
                        path, body = targets(backend)[target]
                        url = backends[backend].url if target == "direct" else stack.url
                        cpu_before, busy_before = c.cpu_by_process(stack.proc.pid), _busy()
                        summary = measure(url, path, body, conc, args.duration, args.load_procs)
                        summary["machine_busy"] = _busy_share(busy_before, _busy())
                        if target != "direct" and summary["requests"]:
                            cpu = c.cpu_delta(cpu_before, c.cpu_by_process(stack.proc.pid))
                            summary["stack_cpu_ms_per_request"] = {
                                _short(k): round(1000 * v / summary["requests"], 3)
                                for k, v in sorted(cpu.items())
                                if v > 0.01
                            }
                        samples.setdefault((backend, target, conc), []).append(summary)
                        print(
                            f"  round {r + 1} {backend:<5} {target:<11} c={conc:<3}"
                            f"{summary['throughput_rps']:8.1f} req/s  p50 {summary['p50_ms'] or 0:7.2f} ms"
                            f"  load cpu {summary['load_cpu_us_per_request'] or 0:6.1f} us/req"
                            f"  busy {summary['machine_busy']}"
                            f"  {summary.get('stack_cpu_ms_per_request', '')}"
                            + (
                                f"  errors {summary['errors']}: {summary['first_error']}"
                                if summary["errors"]
                                else ""
                            ),
                            flush=True,
                        )
    finally:
        if stack is not None:
            stack.stop()
        for b in backends.values():
            b.stop(kill=True)
    rows = []
    for (backend, target, _conc), runs in samples.items():
        row = dict(runs[-1])
        for key in ("throughput_rps", "p50_ms", "p99_ms", "load_cpu_us_per_request"):
            values = [s[key] for s in runs if s.get(key) is not None]
            row[key] = round(c.median(values), 2) if values else None
        row["errors"] = sum(s["errors"] for s in runs)
        rows.append({"backend": backend, "target": target, **row, "rounds": runs})
    return {"rows": rows}


def report(rows: list[dict[str, Any]]) -> tuple[str, list[str], bool]:
    def find(backend: str, target: str, conc: int) -> dict[str, Any]:
        return next(
            r
            for r in rows
            if (r["backend"], r["target"], r["concurrency"]) == (backend, target, conc)
        )

    table_rows = []
    for backend in BACKENDS:
        for conc in CONCURRENCY:
            direct = find(backend, "direct", conc)
            for target in ("direct", "openai", "llama-stack"):
                row = find(backend, target, conc)
                added = (
                    row["p50_ms"] - direct["p50_ms"]
                    if target != "direct"
                    and row["p50_ms"] is not None
                    and direct["p50_ms"] is not None
                    else float("nan")
                )
                table_rows.append(
                    [
                        f"{backend} {target}",
                        conc,
                        row["throughput_rps"],
                        c.fmt_ratio(c.ratio(row["throughput_rps"], direct["throughput_rps"])),
                        row["p50_ms"],
                        added,
                        row["p99_ms"],
                        row["load_cpu_us_per_request"],
                        row["errors"],
                    ]
                )
    table = c.format_table(
        [
            "backend / target",
            "conc",
            "req/s",
            "x direct",
            "p50 ms",
            "+p50 ms",
            "p99 ms",
            "load us/req",
            "errors",
        ],
        table_rows,
    )
    lines, met = [], True
    for conc in (16, 64):
        for target in ("openai", "llama-stack"):
            value = find("zero", target, conc)["throughput_rps"] / LLAMA_STACK_BASELINE[conc]
            line, ok = c.check_line(
                f"zero backend {target} c={conc} vs Llama Stack ({LLAMA_STACK_BASELINE[conc]:g} req/s)",
                value,
                5.0,
            )
            lines.append(line)
            met &= ok
    for target in ("openai", "llama-stack"):
        value = (
            find("50ms", target, 64)["throughput_rps"]
            / find("50ms", "direct", 64)["throughput_rps"]
        )
        line, ok = c.check_line(f"50 ms backend {target} c=64 vs direct", value, 0.9)
        lines.append(line)
        met &= ok
    return table, lines, met


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--backend":
        return backend_main(float(sys.argv[2]))
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        url, path, body, conc, start_at, stop_at, out = sys.argv[2:9]
        return load_main(url, path, body, int(conc), float(start_at), float(stop_at), out)
    if len(sys.argv) > 1 and sys.argv[1] == "--stack":
        return stack_main(json.loads(sys.argv[2]), int(sys.argv[3]))
    parser = c.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gateway-replicas", type=int, default=2)
    parser.add_argument("--load-procs", type=int, default=2, help="load processes per cell")
    parser.add_argument("--throughput-optimized", default="1", choices=["0", "1"])
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 2.0, 1
    print(c.describe_environment(), flush=True)
    print(
        f"gateway replicas {args.gateway_replicas}, "
        f"RAY_SERVE_THROUGHPUT_OPTIMIZED={args.throughput_optimized}, {args.load_procs} load processes",
        flush=True,
    )
    result = run(args)
    table, lines, met = report(result["rows"])
    print(table)
    for line in lines:
        print(line)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    c.write_json(args.json, {"settings": settings, **result, "goal_met": met, "goals": lines})
    return 0


if __name__ == "__main__":
    sys.exit(main())
