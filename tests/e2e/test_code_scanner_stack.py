"""The code scanner in a real Serve replica (`stackray run`): the same unsafe request,
many times at once, is always a violation, and the replica's log shows no crashed or
forked scanner."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from tests.e2e.test_cli import STACKRAY, free_port

UNSAFE = (
    "Clean up like this:\n```python\nimport os, pickle\n\n"
    "def handle(path, data, user_input):\n"
    '    os.system("rm -rf " + path)\n'
    "    obj = pickle.loads(data)\n"
    "    return eval(user_input), obj\n```\n"
)


def write_config(tmp_path: Path) -> Path:
    config = {
        "version": 2,
        "image_name": "code-scan-e2e",
        "apis": ["safety"],
        "providers": {
            "safety": [{"provider_id": "code-scanner", "provider_type": "inline::code-scanner"}]
        },
        "shields": [{"shield_id": "code-scanner", "provider_id": "code-scanner"}],
        "storage": {"data_dir": str(tmp_path / "data")},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_every_concurrent_scan_of_an_unsafe_request_is_a_violation(tmp_path):
    from llama_stack_client import LlamaStackClient

    port = free_port()
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [*STACKRAY, "run", str(write_config(tmp_path)), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stream = proc.stdout

    def read() -> None:
        for line in stream:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any(line.startswith("serving http://") for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        client = LlamaStackClient(base_url=f"http://127.0.0.1:{port}", timeout=60, max_retries=0)

        def scan(_: int):
            return client.safety.run_shield(
                shield_id="code-scanner", messages=[{"role": "user", "content": UNSAFE}], params={}
            ).violation

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(scan, range(40)))
        patterns = ["insecure-eval-use", "insecure-os-system-use", "unsafe-pickle-use"]
        assert [v is not None and v.metadata["patterns"] for v in answers] == [patterns] * 40
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=10)
    log = "".join(lines)
    assert "SIGSEGV" not in log
    assert "skipping fork() handlers" not in log
    assert "code scan of message" not in log  # no scan failed
