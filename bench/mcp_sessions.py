"""What reusing MCP sessions saves on a tool call.

The tool runtime router (in this process, no Ray) calls the ``add`` tool of a real MCP
server (built with the `mcp` package, running in a subprocess on 127.0.0.1) over
streamable HTTP and over SSE, once with a new session per call (``session_idle_s: 0``)
and once with sessions kept open and reused (the default). Measured: the latency of
sequential calls, and calls/s from 8 concurrent callers. The contenders alternate round
by round so that drift in the machine's load hits them alike; figures are medians over
rounds.

    python bench/mcp_sessions.py [--quick] [--json PATH] [--rounds N] [--calls N]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from typing import Any

import _common as c

SERVER = """
import json, logging, sys
for name in ("mcp", "httpx2", "uvicorn", "sse_starlette"):
    logging.getLogger(name).setLevel(logging.WARNING)
from tests.mcp_server import MCPTestServer
server = MCPTestServer().start()
print(json.dumps({"http": server.http_url, "sse": server.sse_url}), flush=True)
sys.stdin.read()
server.stop()
"""
MODES = {"per-call": 0.0, "reused": 60.0}
TRANSPORTS = ("http", "sse")
CONCURRENCY = 8


async def build_router(data_dir: str, idle_s: float) -> Any:
    from stackray.runtime.config import parse_config
    from stackray.runtime.graph import build_local_stack

    stack = parse_config(
        {
            "version": 2,
            "image_name": "bench-mcp",
            "apis": ["tool_runtime"],
            "providers": {
                "tool_runtime": [
                    {
                        "provider_id": "mcp",
                        "provider_type": "remote::model-context-protocol",
                        "config": {"session_idle_s": idle_s},
                    }
                ]
            },
            "storage": {"data_dir": data_dir},
        }
    )
    return (await build_local_stack(stack))["tool_runtime"]


async def measure(data_dir: str, idle_s: float, uri: str, calls: int) -> tuple[float, float]:
    """(median latency in ms of sequential calls, calls/s from CONCURRENCY callers)."""
    from stackray.api.common import URL
    from stackray.api.tools import InvokeToolRequest, RegisterToolGroupRequest

    router = await build_router(data_dir, idle_s)
    # Tool names are unique across groups: one group at a time, unregistered after.
    group = f"bench::{uri}"
    await router.register_tool_group(
        RegisterToolGroupRequest(toolgroup_id=group, provider_id="mcp", mcp_endpoint=URL(uri=uri))
    )
    request = InvokeToolRequest(tool_name="add", kwargs={"a": 1, "b": 2})

    async def call() -> None:
        result = await router.invoke_tool(request)
        if result.error_message:
            raise RuntimeError(result.error_message)

    try:
        sequential = await c.run_load(call, 1, requests=calls, warmup=2)
        concurrent = await c.run_load(call, CONCURRENCY, requests=calls * 2, warmup=CONCURRENCY)
    finally:
        await router.unregister_toolgroup(group)
        for provider in router.providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
    if sequential.errors or concurrent.errors:
        raise RuntimeError(sequential.first_error or concurrent.first_error)
    return sequential.p50_ms, concurrent.throughput


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    parser.add_argument("--calls", type=int, default=None, help="calls per cell (default 60)")
    args = parser.parse_args(argv)
    print(c.describe_environment(), flush=True)
    rounds = args.rounds or (1 if args.quick else 3)
    calls = args.calls or (20 if args.quick else 60)
    c.quiet_environment()
    import logging

    for name in ("mcp", "httpx2", "stackray"):
        logging.getLogger(name).setLevel(logging.WARNING)

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=c.REPO,
    )
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        latency: dict[tuple[str, str], list[float]] = {}
        rate: dict[tuple[str, str], list[float]] = {}
        with tempfile.TemporaryDirectory(prefix="stackray-bench-") as tmp:
            for r in range(rounds):
                for transport in TRANSPORTS:
                    for mode, idle_s in MODES.items():
                        p50, per_s = asyncio.run(measure(tmp, idle_s, urls[transport], calls))
                        latency.setdefault((transport, mode), []).append(p50)
                        rate.setdefault((transport, mode), []).append(per_s)
                print(f"  round {r + 1} done", flush=True)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)

    rows = []
    results: dict[str, Any] = {}
    for transport in TRANSPORTS:
        per_call = c.median(latency[(transport, "per-call")])
        reused = c.median(latency[(transport, "reused")])
        rate_per_call = c.median(rate[(transport, "per-call")])
        rate_reused = c.median(rate[(transport, "reused")])
        rows.append(
            [
                transport,
                per_call,
                reused,
                c.fmt_ratio(c.ratio(per_call, reused)),
                rate_per_call,
                rate_reused,
                c.fmt_ratio(c.ratio(rate_reused, rate_per_call)),
            ]
        )
        results[transport] = {
            "p50_ms_per_call_session": per_call,
            "p50_ms_reused_session": reused,
            "calls_per_s_per_call_session": rate_per_call,
            "calls_per_s_reused_session": rate_reused,
        }
    print(
        c.format_table(
            [
                "transport",
                "p50 ms, new session",
                "p50 ms, reused",
                "speedup",
                f"calls/s x{CONCURRENCY}, new",
                "calls/s, reused",
                "ratio",
            ],
            rows,
            title=f"\nMCP tool call, {calls} calls per cell, median of {rounds} round(s)",
        )
    )
    c.write_json(args.json, {"benchmark": "mcp_sessions", "rounds": rounds, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
