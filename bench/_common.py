"""Helpers shared by the benchmarks: a bounded async load generator, percentiles, tables,
JSON output, free ports, and starting/stopping a stack in this process.

Everything above the "Stacks" section is pure Python (no Ray, no torch) and is unit tested
in tests/unit/bench/test_common.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# ---- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, linearly interpolated between the closest
    ranks (numpy's default method). NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(a: float, b: float) -> float:
    """a / b, NaN when either is missing or b is 0."""
    if b == 0 or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


@dataclass
class LoadResult:
    """What one load run measured. Latencies are in seconds."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    units: float = 0.0
    """Sum of what the calls returned (tokens, texts ...); requests when they return None."""
    errors: int = 0
    first_error: str | None = None
    elapsed: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.requests / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def unit_rate(self) -> float:
        """Units (tokens, texts ...) per second."""
        return self.units / self.elapsed if self.elapsed > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "first_error": self.first_error,
            "elapsed_s": round(self.elapsed, 4),
            "p50_ms": _round(self.p50_ms),
            "p99_ms": _round(self.p99_ms),
            "throughput_rps": _round(self.throughput),
            "units": self.units,
            "units_per_s": _round(self.unit_rate),
        }


def _round(x: float, digits: int = 3) -> float | None:
    return None if math.isnan(x) else round(x, digits)


# ---- load generation ----------------------------------------------------------------------

Call = Callable[[], Awaitable[Any]]


async def run_load(
    call: Call,
    concurrency: int,
    requests: int | None = None,
    duration: float | None = None,
    warmup: int = 0,
    max_errors: int = 20,
) -> LoadResult:
    """Run `call` from `concurrency` workers until `requests` calls were started or
    `duration` seconds passed (whichever is given; both: whichever comes first).

    Each call's latency is recorded; its return value, when a number, is added to `units`
    (anything else counts as 1). `warmup` calls run first, one per worker at a time, unrecorded.
    Failing calls are counted, not timed; the run stops after `max_errors` of them.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if requests is None and duration is None:
        raise ValueError("give requests or duration")
    if warmup:
        for start in range(0, warmup, concurrency):
            await asyncio.gather(*(call() for _ in range(min(concurrency, warmup - start))))

    result = LoadResult(concurrency=concurrency)
    started = time.perf_counter()
    deadline = started + duration if duration is not None else math.inf
    issued = 0

    def take() -> bool:
        nonlocal issued
        if requests is not None and issued >= requests:
            return False
        if time.perf_counter() >= deadline or result.errors >= max_errors:
            return False
        issued += 1
        return True

    async def worker() -> None:
        while take():
            t0 = time.perf_counter()
            try:
                got = await call()
            except Exception as exc:
                result.errors += 1
                if result.first_error is None:
                    result.first_error = f"{type(exc).__name__}: {exc}"[:500]
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.units += got if isinstance(got, int | float) and not isinstance(got, bool) else 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result


def http_call(
    client: Any,
    path: str,
    body: dict[str, Any] | Callable[[], dict[str, Any]],
    units: Callable[[dict[str, Any]], float] | None = None,
) -> Call:
    """A `run_load` call that POSTs `body` (or `body()`) to `path` with an
    `httpx.AsyncClient` and fails on any non-2xx answer. `units(json)` gives what one
    answer counts for (default 1 request)."""

    async def call() -> float | None:
        payload = body() if callable(body) else body
        response = await client.post(path, json=payload)
        if response.status_code >= 300:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        return units(response.json()) if units is not None else None

    return call


def http_client(base_url: str, concurrency: int, timeout: float = 300.0) -> Any:
    """An `httpx.AsyncClient` with room for `concurrency` keep-alive connections."""
    import httpx

    limits = httpx.Limits(
        max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4
    )
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)


# ---- output -------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: numbers with `digits` decimals, NaN/None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def fmt_ratio(value: float | None) -> str:
    """'1.23x'; two significant digits below 0.1 ('0.0012x')."""
    if value is None or math.isnan(value):
        return "-"
    if 0 < abs(value) < 0.1:
        return f"{value:.2g}x"
    return f"{value:.2f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned.
    Cells that are not strings go through `fmt`."""
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells for {len(headers)} columns: {row}")
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(row: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = []
    if title:
        out.append(title)
    out.append(line(list(headers)))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def check_line(name: str, value: float, goal: float, unit: str = "x") -> tuple[str, bool]:
    """'GOAL <name>: <value> >= <goal>: met' (or 'NOT met') and whether it was met."""
    met = not math.isnan(value) and value >= goal
    return f"GOAL {name}: {value:.2f}{unit} >= {goal:g}{unit}: {'met' if met else 'NOT met'}", met


# Settings that change what the benchmarks measure; shown with the results when set.
ENV_OF_INTEREST = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "MKL_NUM_THREADS",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S",
    "STACKRAY_DEVICE",
)


def describe_environment() -> str:
    """One line naming the machine and the settings of interest, for the top of an output."""
    info = machine_info()
    env = (
        " ".join(f"{k}={v}" for k, v in info.get("env", {}).items()) or "no thread/Serve overrides"
    )
    return (
        f"machine: {info['cpus']} CPUs, {info.get('mem_gib', '?')} GiB, "
        f"load {info.get('load_avg_1m', '?')}; {env}"
    )


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError, ValueError, IndexError):
        for row in Path("/proc/meminfo").read_text().splitlines():
            if row.startswith("MemTotal:"):
                info["mem_gib"] = round(int(row.split()[1]) / 2**20, 1)
    with contextlib.suppress(OSError):
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    env = {k: os.environ[k] for k in ENV_OF_INTEREST if k in os.environ}
    if env:
        info["env"] = env
    for mod in ("ray", "torch", "transformers", "sentence_transformers"):
        if mod in sys.modules:
            info[mod] = getattr(sys.modules[mod], "__version__", "?")
    return info


def write_json(path: str | os.PathLike[str] | None, data: dict[str, Any]) -> None:
    if not path:
        return
    out = {"machine": machine_info(), **data}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"results written to {path}")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (~30 s) with fewer requests"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return parser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str,
    timeout: float,
    interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
) -> float:
    """Poll `url` until it answers 200; return the seconds waited. TimeoutError after
    `timeout`; RuntimeError as soon as `alive()` (the server process is running) is false."""
    import httpx

    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < timeout:
        if alive is not None and not alive():
            raise RuntimeError(f"the server exited before {url} answered")
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return time.monotonic() - started
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s (last: {last})")


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a process, from /proc; None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # after the command name: state ppid ... utime (12th) stime (13th)
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    first = args[0].decode(errors="replace") if args and args[0] else "?"
    if first.startswith("ray::"):
        return first.split()[0]
    if "python" in Path(first).name and len(args) > 1 and args[1]:
        second = args[1].decode(errors="replace")
        return Path(second).name if not second.startswith("-") else Path(first).name
    return Path(first).name


def cpu_by_process(root: int | None = None) -> dict[str, float]:
    """CPU seconds used so far by `root` (default: this process) and all its descendants,
    summed by process name ('ray::ProxyActor', 'raylet', ...; this process is 'driver').
    Linux only; empty elsewhere."""
    root = os.getpid() if root is None else root
    if not Path("/proc").is_dir():
        return {}
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None:
                stats[int(entry.name)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid not in stats:
            continue
        name = "driver" if pid == root else _proc_name(pid)
        out[name] = out.get(name, 0.0) + stats[pid][1]
        todo.extend(children.get(pid, []))
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process name between two `cpu_by_process` snapshots."""
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0) > 0}


# ---- stacks -------------------------------------------------------------------------------

ECHO_PROVIDER = {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
ECHO_MODEL = {"model_id": "echo-model", "provider_id": "echo", "model_type": "llm"}


def quiet_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("ray", "ray.serve", "filelock", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def local_distribution() -> dict[str, Any]:
    """The `local` distribution's run config as a mapping (env placeholders unresolved)."""
    import yaml

    from stackray.runtime.config import resolve_config_path

    return yaml.safe_load(resolve_config_path("local").read_text())


def stack_config(
    data_dir: str | os.PathLike[str],
    providers: list[dict[str, Any]],
    models: list[dict[str, Any]],
    deployments: dict[str, Any] | None = None,
    image_name: str = "bench",
) -> dict[str, Any]:
    """A run config mapping serving the inference API with `providers` and `models` (the
    inference router runs in the gateway)."""
    deployments = {k: dict(v) for k, v in (deployments or {"gateway": {"num_replicas": 1}}).items()}
    return {
        "version": 2,
        "image_name": image_name,
        "apis": ["inference"],
        "providers": {"inference": providers},
        "models": models,
        "storage": {"data_dir": str(data_dir)},
        "deployments": deployments,
    }


def local_provider(provider_id: str) -> dict[str, Any]:
    """A provider entry of the local distribution, by id."""
    for p in local_distribution()["providers"]["inference"]:
        if p["provider_id"] == provider_id:
            return dict(p)
    raise KeyError(provider_id)


def local_models(provider_id: str) -> list[dict[str, Any]]:
    return [dict(m) for m in local_distribution()["models"] if m["provider_id"] == provider_id]


@contextlib.contextmanager
def running_stack(
    config: dict[str, Any],
    num_cpus: int = 4,
    extra_apps: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
) -> Iterator[str]:
    """Start Ray, Serve and the stack for `config` in this process; yield the base URL.

    `extra_apps` maps route prefixes to other Serve applications deployed beside it
    (e.g. a trivial deployment as a floor). Ray and Serve are shut down on exit.
    `timings`, when given, receives `start_s` and `shutdown_s`.
    """
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    quiet_environment()
    import ray
    from ray import serve

    from stackray.deployments.app import build_app

    port = free_port()
    ray.init(
        include_dashboard=False,
        num_cpus=num_cpus,
        log_to_driver=False,
        logging_level="WARNING",
        configure_logging=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for i, (prefix, app) in enumerate((extra_apps or {}).items()):
            serve.run(app, name=f"extra{i}", route_prefix=prefix)
        serve.run(build_app({"stack": config}), name="stackray", route_prefix="/")
        timings["start_s"] = time.perf_counter() - t0
        yield f"http://127.0.0.1:{port}"
    finally:
        t1 = time.perf_counter()
        with contextlib.suppress(Exception):
            serve.shutdown()
        timings["shutdown_s"] = time.perf_counter() - t1
        ray.shutdown()


def serve_floor_app() -> Any:
    """The least a Serve HTTP request can cost: one deployment answering a constant JSON."""
    from ray import serve

    @serve.deployment(name="floor", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
    class Floor:
        async def __call__(self, request: Any) -> dict[str, str]:
            return {"status": "OK"}

    return Floor.bind()
