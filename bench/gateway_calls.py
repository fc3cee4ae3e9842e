"""Python function calls per request through the gateway: a deterministic measure of the
request path's work (no timing noise), optionally against another checkout.

The gateway app (`create_gateway_app`) over an in-process stack with the external echo
provider, driven by FastAPI's `TestClient` under cProfile; the client's and Starlette's
own calls are included, and `GET /v1/version` is reported as the floor.

    python bench/gateway_calls.py [--requests N] [--before CHECKOUT]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MESSAGES = [{"role": "user", "content": "hello there"}]
PATHS = {
    "native chat": ("/v1/inference/chat-completion", {"model_id": "m", "messages": MESSAGES}),
    "openai chat": ("/v1/chat/completions", {"model": "m", "messages": MESSAGES}),
    "version (floor)": ("/v1/version", None),
}


def measure(requests: int) -> dict[str, float]:
    from fastapi.testclient import TestClient

    from stackray.deployments.gateway import create_gateway_app
    from stackray.runtime.config import parse_config

    try:
        from stackray.runtime.graph import build_local_stack
    except ImportError:  # checkouts before the composition graph
        from stackray.runtime.stack import build_local_stack  # type: ignore[no-redef]

    stack = parse_config(
        {
            "version": 2,
            "image_name": "calls",
            "apis": ["inference"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "echo",
                        "provider_type": "remote::echo",
                        "module": "stackray_echo",
                    }
                ]
            },
            "models": [{"model_id": "m", "provider_id": "echo"}],
            "storage": {"data_dir": tempfile.mkdtemp(prefix="stackray-calls-")},
        }
    )
    app = create_gateway_app(stack, asyncio.run(build_local_stack(stack)))
    out = {}
    with TestClient(app) as client:
        for name, (path, body) in PATHS.items():

            def send(path: str = path, body: Any = body) -> Any:
                return client.post(path, json=body) if body else client.get(path)

            for _ in range(50):
                assert send().status_code == 200
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(requests):
                send()
            profile.disable()
            out[name] = pstats.Stats(profile).total_calls / requests  # type: ignore[attr-defined]
    return out


def in_checkout(tree: Path, requests: int) -> dict[str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--requests", str(requests)],
        env=env,
        cwd=str(tree),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.requests)))
        return 0
    here = Path(__file__).resolve().parent.parent
    after = in_checkout(here, args.requests)
    before: dict[str, Any] = (
        in_checkout(args.before.resolve(), args.requests) if args.before else {}
    )
    print(f"Python calls per request ({args.requests} requests each)")
    for name, calls in after.items():
        if name in before:
            print(
                f"  {name:<16} before {before[name]:7.0f}  after {calls:7.0f}  after/before {calls / before[name]:.3f}x"
            )
        else:
            print(f"  {name:<16} {calls:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
