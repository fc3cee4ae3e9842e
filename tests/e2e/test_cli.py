"""`stackray` as a user runs it: a real process, real Ray, Ctrl-C to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

STACKRAY = [sys.executable, "-m", "stackray.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_echo_config(tmp_path: Path, name: str) -> Path:
    """A run config serving model `m` with the external echo provider; its path."""
    config = {
        "version": 2,
        "image_name": name,
        "apis": ["inference"],
        "providers": {
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
            ]
        },
        "models": [{"model_id": "m", "provider_id": "echo"}],
        "storage": {"data_dir": str(tmp_path / "data")},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*STACKRAY, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_commands():
    out = run_cli("--help").stdout
    for command in ("run", "check", "providers", "serve-config"):
        assert command in out
    assert "--port" in run_cli("run", "--help").stdout


def test_invalid_config_fails_fast_with_path_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"version": 2, "image_name": "x", "apis": ["inference"], "server": {"port": "high"}}
        )
    )
    result = run_cli("run", str(bad))
    assert result.returncode == 2
    assert f"{bad}: server.port" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("check", str(bad))
    assert result.returncode == 2 and "server.port" in result.stderr


def test_check_and_providers():
    assert run_cli("check", "local").stdout.startswith("local: ok")
    listing = run_cli("providers").stdout
    header, *rows = listing.splitlines()
    assert header.split() == ["API", "PROVIDER", "TYPE", "RUNS", "IN", "DESCRIPTION"]
    assert "inline::transformers" in listing and "inline::sentence-transformers" in listing
    runs_in = {row.split()[1]: row.split()[2] for row in rows}
    assert runs_in["inline::transformers"] == "model-<id>"
    assert runs_in["inline::faiss"] == "index-<id>"
    assert runs_in["remote::vllm"] == "in-process"


def test_run_serves_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    path = write_echo_config(tmp_path, "e2e")
    env = dict(os.environ, RAY_ADDRESS="")
    env.pop("RAY_ADDRESS")
    proc = subprocess.Popen(
        [*STACKRAY, "run", str(path), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving http://"):
                break
        output = "".join(lines)
        assert f"serving http://127.0.0.1:{port}" in output, output
        # A remote provider runs in the gateway: the one deployment of this stack.
        assert "deployment gateway" in output and "deployment inference" not in output
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/inference/chat-completion",
            json={"model_id": "m", "messages": [{"role": "user", "content": "hello"}]},
            timeout=30,
        )
        assert r.json()["completion_message"]["content"] == "echo: hello"
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/inference/chat-completion",
            json={"model_id": "ghost", "messages": [{"role": "user", "content": "hello"}]},
            timeout=30,
        )
        assert r.status_code == 404
        trace_id = r.headers.get("x-trace-id")
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    # One line for the failed request, with its status and trace id; nothing to ignore
    # at shutdown.
    [line] = [x for x in rest.splitlines() if "/v1/inference/chat-completion -> " in x]
    assert "POST /v1/inference/chat-completion -> 404 not_found_error: model 'ghost'" in line
    if trace_id:  # with telemetry on, the line carries the request's trace id
        assert trace_id in line
    assert "Traceback" not in rest
    assert "infinite retries" not in rest and "graceful_shutdown" not in rest
    # The port is free again: nothing was left serving.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    # State persisted under the data dir survives the stop.
    assert (Path(tmp_path) / "data" / "registry.db").exists()


def test_serve_run_with_generated_serve_config(tmp_path):
    """`stackray serve-config` output works with Ray Serve's own `serve run`."""
    port = free_port()
    run_yaml = write_echo_config(tmp_path, "e2e-serve")
    serve_doc = yaml.safe_load(run_cli("serve-config", str(run_yaml)).stdout)
    serve_doc["http_options"] = {"host": "127.0.0.1", "port": port}
    serve_yaml = tmp_path / "serve.yaml"
    serve_yaml.write_text(yaml.safe_dump(serve_doc))
    serve_bin = str(Path(sys.executable).parent / "serve")
    proc = subprocess.Popen(
        [serve_bin, "run", str(serve_yaml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/inference/chat-completion",
                    json={
                        "model_id": "m",
                        "messages": [{"role": "user", "content": "via serve run"}],
                    },
                    timeout=10,
                )
                body = r.json()
                break
            except (httpx.HTTPError, ValueError):
                time.sleep(1)
        assert body is not None, "serve run never answered"
        assert body["completion_message"]["content"] == "echo: via serve run"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)


def test_check_reports_yaml_errors_and_unset_variables_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nimage_name: x\napis: [inference\nproviders: {}\n")
    result = run_cli("check", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}:4:10: invalid YAML: expected ',' or ']', but got ':'" in result.stderr
    unset = tmp_path / "unset.yaml"
    unset.write_text(
        "version: 2\nimage_name: x\napis: [inference]\nserver:\n  port: ${env.NOPE_X}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NOPE_X"}
    result = subprocess.run(
        [*STACKRAY, "check", str(unset)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{unset}: server.port: environment variable NOPE_X is not set" in result.stderr
