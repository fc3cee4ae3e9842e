"""Cold start of `stackray run`: from launching the command to `/v1/health` answering and a
first chat completion (and embedding) succeeding, then a clean stop on SIGINT.

Runs the `local` distribution twice with one fresh data directory: the first run converts
the packaged GGUF to safetensors, the second loads that copy. The baseline, in the same
run: a bare Ray Serve app (ray.init, serve.start, one trivial deployment) started the same
way, i.e. what any Serve-based server pays before its own code runs.

    python bench/cold_start.py [--quick] [--json PATH] [--config CONFIG]

--quick starts a stack with only the external echo provider (no model to load), once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import _common as c

CHAT = {
    "SmolLM2-135M-Instruct": {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 8,
        "temperature": 0,
    },
    "echo-model": {"model": "echo-model", "messages": [{"role": "user", "content": "hi"}]},
}
EMBED = {"model_id": "all-MiniLM-L6-v2", "contents": ["hello world"]}

FLOOR_SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading
    import ray
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Floor:
        async def __call__(self, request):
            return {"status": "OK"}

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    ray.init(include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
    serve.run(Floor.bind(), name="floor", route_prefix="/v1/health")
    print("ready", flush=True)
    while not stop.wait(0.5):
        pass
    serve.shutdown()
    ray.shutdown()
    """
)


class Launched:
    """A server process started in its own session, its output collected with timestamps."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.started, line.rstrip()))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def since_start(self) -> float:
        return time.monotonic() - self.started

    def line_with(self, text: str) -> str | None:
        return next((line for _, line in self.lines if text in line), None)

    def tail(self, n: int = 40) -> str:
        return "\n".join(line for _, line in self.lines[-n:])

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGINT, wait for the exit; report the exit code, how long it took, leftovers."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        stop_s = time.monotonic() - t0
        self._reader.join(5)
        time.sleep(1.0)  # let Ray's own processes finish exiting
        left = leftover_processes(self.proc.pid)
        if rc is None or left:  # clean up what we started, by process group only
            for pid in [self.proc.pid, *left]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return {"exit_code": rc, "stop_s": round(stop_s, 2), "leftover_processes": left}


def leftover_processes(session: int) -> list[int]:
    """Processes still alive in the session `session` (started with start_new_session)."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command name: state ppid pgrp session ...
        if int(fields[3]) == session and fields[0] != "Z":
            left.append(int(stat.parent.name))
    return sorted(left)


def stackray_cmd() -> list[str]:
    script = Path(sys.executable).with_name("stackray")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "stackray.cli"]


def post_until_ok(url: str, body: dict[str, Any], timeout: float) -> list[str]:
    """POST to `url` until it answers 2xx (retrying failures for `timeout` seconds);
    return the failed attempts' errors."""
    import httpx

    t0 = time.monotonic()
    failures: list[str] = []
    while time.monotonic() - t0 < timeout:
        try:
            r = httpx.post(url, json=body, timeout=timeout)
            if r.status_code < 300:
                return failures
            failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
        except httpx.HTTPError as e:
            failures.append(f"{type(e).__name__}: {e}")
        time.sleep(0.2)
    raise TimeoutError(f"POST {url} did not succeed within {timeout:.0f}s (last: {failures[-1:]})")


def run_stack(
    config: str, data_dir: Path, model: str, embed: bool, timeout: float
) -> dict[str, Any]:
    port = c.free_port()
    cmd = [*stackray_cmd(), "run", config, "--port", str(port), "--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = Launched(cmd, env)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"command": " ".join(cmd)}
    try:
        c.wait_http(base + "/v1/health", timeout, alive=server.alive)
        out["health_s"] = round(server.since_start(), 2)
        out["chat_failures"] = post_until_ok(base + "/v1/chat/completions", CHAT[model], 120)
        out["first_chat_s"] = round(server.since_start(), 2)
        if embed:
            out["embed_failures"] = post_until_ok(base + "/v1/inference/embeddings", EMBED, 60)
            out["first_embedding_s"] = round(server.since_start(), 2)
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
        print(f"failed: {out['error']}\n--- output ---\n{server.tail()}", flush=True)
    finally:
        out.update(server.stop())
        ready = [(t, line) for t, line in server.lines if "ready in" in line]
        out["reported"] = ready[0][1].strip() if ready else None
        out["ready_line_s"] = round(ready[0][0], 2) if ready else None
        out["said_stopping"] = server.line_with("stopping") is not None
        out["clean_exit"] = (
            out["exit_code"] == 0 and not out["leftover_processes"] and "error" not in out
        )
        if out["exit_code"] != 0:
            print(f"exit code {out['exit_code']}\n--- output ---\n{server.tail()}", flush=True)
    return out


def run_floor(timeout: float) -> dict[str, Any]:
    port = c.free_port()
    server = Launched([sys.executable, "-c", FLOOR_SCRIPT, str(port)], dict(os.environ))
    out: dict[str, Any] = {}
    try:
        c.wait_http(f"http://127.0.0.1:{port}/v1/health", timeout, alive=server.alive)
        out["health_s"] = round(server.since_start(), 2)
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
        print(f"serve floor failed: {out['error']}\n{server.tail()}", flush=True)
    finally:
        out.update(server.stop())
    return out


def echo_config(path: Path) -> None:
    import yaml

    config = c.stack_config("unused", [c.ECHO_PROVIDER], [c.ECHO_MODEL], image_name="bench-echo")
    del config["storage"]  # --data-dir gives it
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--config", default=None, help="run config or distribution (default: local; quick: echo)"
    )
    parser.add_argument(
        "--timeout", type=float, default=240, help="seconds to wait for a start (default 240)"
    )
    args = parser.parse_args(argv)
    print(c.describe_environment(), flush=True)
    c.quiet_environment()

    tmp = Path(tempfile.mkdtemp(prefix="stackray-bench-cold-"))
    try:
        if args.config:
            config, model = args.config, "SmolLM2-135M-Instruct"
        elif args.quick:
            config, model = str(tmp / "echo.yaml"), "echo-model"
            echo_config(Path(config))
        else:
            config, model = "local", "SmolLM2-135M-Instruct"
        embed = model != "echo-model"
        runs = ["first"] if args.quick else ["first", "cached"]
        results: dict[str, Any] = {}
        # Read the libraries once so the first timed start does not pay for a cold page cache.
        subprocess.run([sys.executable, "-c", "import ray.serve, stackray.deployments.app"])
        for name in runs:
            print(f"stackray run {config} ({name} run, data dir {tmp / 'data'}) ...", flush=True)
            results[name] = run_stack(config, tmp / "data", model, embed, args.timeout)
            if results[name].get("reported"):
                print(f"  {results[name]['reported']}", flush=True)
        # Last, so that it starts as warm as the cached run (the first Ray start of a
        # session is slower).
        print("serve floor (bare Ray Serve app) ...", flush=True)
        results["serve-floor"] = run_floor(args.timeout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    floor = results["serve-floor"].get("health_s", float("nan"))
    rows: list[list[Any]] = []
    for name in runs:
        r = results[name]
        rows.append(
            [
                f"stackray, {name} run",
                r.get("health_s", float("nan")),
                r.get("first_chat_s", float("nan")),
                r.get("first_embedding_s", float("nan")),
                r.get("ready_line_s", float("nan")),
                len(r.get("chat_failures", [])),
                c.fmt_ratio(c.ratio(r.get("health_s", float("nan")), floor)),
                r.get("stop_s"),
                f"{r.get('exit_code')}" + ("" if r.get("clean_exit") else " (NOT clean)"),
            ]
        )
    rows.append(
        [
            "serve floor",
            floor,
            "-",
            "-",
            "-",
            "-",
            c.fmt_ratio(1.0),
            results["serve-floor"].get("stop_s"),
            results["serve-floor"].get("exit_code"),
        ]
    )
    print()
    print(
        c.format_table(
            [
                "start",
                "health s",
                "first chat s",
                "first embed s",
                "'ready' line s",
                "failed chats",
                "health vs floor",
                "stop s",
                "exit",
            ],
            rows,
            title=f"Cold start of `stackray run {config}` (seconds from launch)",
        )
    )
    print(
        "health: first 200 from /v1/health; first chat: first successful chat completion "
        "(sent right after health, retried on errors: 'failed chats');\n"
        "'ready' line: when `stackray run` printed 'ready in'. All in seconds since launch."
    )
    for name in runs:
        fails = results[name].get("chat_failures") or []
        if fails:
            print(f"  {name}: first failed chat: {fails[0]}")
    clean = all(results[name].get("clean_exit") for name in runs)
    print(
        f"\nSIGINT: {'every run exited with 0 and left no process behind' if clean else 'NOT clean: see above'}"
    )
    for name in runs:
        if results[name].get("leftover_processes"):
            print(f"  {name}: leftover processes {results[name]['leftover_processes']}")
    c.write_json(
        args.json,
        {"benchmark": "cold_start", "config": config, "clean_exit": clean, "results": results},
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
