"""Run every benchmark, one process each, and summarise (`make bench`).

    python bench/run_all.py [--quick] [--out DIR] [--only NAME ...]

Each benchmark prints its own tables; with --out DIR each also writes DIR/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS = [
    "gateway_overhead",
    "remote_gateway",
    "embeddings",
    "generation",
    "cold_start",
    "mcp_sessions",
    "agents",
    "vector_io",
    "ingest",
    "tracing_overhead",
]


def summary_line(name: str, data: dict) -> str:
    if "goal_met" in data:
        return f"goal {'met' if data['goal_met'] else 'NOT met'} (>= {data.get('goal')}x)"
    if "clean_exit" in data:
        return "clean exit" if data["clean_exit"] else "exit NOT clean"
    return "measured"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke runs")
    parser.add_argument("--out", type=Path, default=None, help="write <name>.json files here")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None)
    args = parser.parse_args(argv)

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="stackray-bench-results-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # The benchmarks measure the stackray next to them, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BENCH_DIR.parent), env.get("PYTHONPATH", "")) if p
    )
    rows = []
    failed = False
    for name in args.only or BENCHMARKS:
        print(f"\n######## {name}\n", flush=True)
        json_path = out_dir / f"{name}.json"
        cmd = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--json", str(json_path)]
        if args.quick:
            cmd.append("--quick")
        t0 = time.monotonic()
        rc = subprocess.run(cmd, env=env).returncode
        elapsed = time.monotonic() - t0
        note = "no results"
        if json_path.exists():
            note = summary_line(name, json.loads(json_path.read_text()))
        rows.append((name, rc, elapsed, note))
        failed |= rc != 0

    print("\n######## summary\n")
    for name, rc, elapsed, note in rows:
        print(f"{name:<18} exit {rc:<3} {elapsed:6.0f} s  {note}")
    print(f"\nJSON results in {out_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
