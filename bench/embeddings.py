"""Embedding throughput through the stack vs. sentence-transformers called directly.

The stack: `POST /v1/inference/embeddings` (model all-MiniLM-L6-v2, provider
inline::sentence-transformers) from 16 concurrent clients, each request carrying 1 text,
then 8 texts. The baseline, in the same run and process: `SentenceTransformer(<the packaged
model dir>).encode(texts, batch_size=32)` on the same texts, as a user would batch them,
with torch's default thread count and with 1 thread; the faster of the two is the baseline.
Goal: the stack's texts/s >= 0.8x the baseline's.

    python bench/embeddings.py [--quick] [--json PATH] [--texts N] [--rounds R]
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from typing import Any

import _common as c

MODEL = "all-MiniLM-L6-v2"
CLIENTS = 16
GOAL = 0.8

_WORDS = (
    "the a river mountain city quiet bright engine garden winter summer train station "
    "library window ocean forest painter music number signal market bridge tower cloud "
    "stone letter morning evening travels builds opens watches carries finds remembers "
    "slowly quickly under over near beside through across old new small large green red"
).split()


def make_texts(n: int, seed: int = 7) -> list[str]:
    """`n` distinct sentences of 10 to 30 words."""
    rng = random.Random(seed)
    return [
        f"{i}: " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(10, 30))) + "."
        for i in range(n)
    ]


def baseline(model: Any, texts: list[str], threads: int | None = None) -> float:
    """Texts per second of one `encode` call over all texts (with `threads` torch threads)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        vectors = model.encode(texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
        elapsed = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    assert len(vectors) == len(texts)
    return len(texts) / elapsed


async def through_stack(base_url: str, texts: list[str], per_request: int) -> c.LoadResult:
    batches = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    it = iter(batches)

    def body() -> dict[str, Any]:
        return {"model_id": MODEL, "contents": next(it)}

    def units(answer: dict[str, Any]) -> float:
        return float(len(answer["embeddings"]))

    async with c.http_client(base_url, CLIENTS) as client:
        call = c.http_call(client, "/v1/inference/embeddings", body, units)
        return await c.run_load(call, CLIENTS, requests=len(batches))


async def warm_up(base_url: str, texts: list[str]) -> None:
    async with c.http_client(base_url, CLIENTS) as client:
        call = c.http_call(
            client, "/v1/inference/embeddings", {"model_id": MODEL, "contents": texts}
        )
        await c.run_load(call, CLIENTS, requests=2 * CLIENTS)


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=None, help="texts per round (default 512)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    args = parser.parse_args(argv)
    print(c.describe_environment(), flush=True)
    n = args.texts or (96 if args.quick else 512)
    rounds = args.rounds or (1 if args.quick else 3)
    texts = make_texts(n)

    c.quiet_environment()
    import torch
    from sentence_transformers import SentenceTransformer

    from stackray.providers.inline.inference.sentence_transformers.impl import resolve_model_dir

    model_dir = resolve_model_dir(MODEL)
    direct_model = SentenceTransformer(model_dir, device="cpu")
    direct_model.encode(texts[:64], batch_size=32, show_progress_bar=False)  # warm up

    threads = torch.get_num_threads()
    measured: dict[str, list[float]] = {
        "direct": [],
        "direct-1-thread": [],
        "stack-1": [],
        "stack-8": [],
    }
    latency: dict[str, list[c.LoadResult]] = {"stack-1": [], "stack-8": []}
    with tempfile.TemporaryDirectory(prefix="stackray-bench-") as tmp:
        config = c.stack_config(
            tmp,
            [c.local_provider("sentence-transformers")],
            c.local_models("sentence-transformers"),
        )
        started = time.perf_counter()
        with c.running_stack(config) as url:
            print(f"stack ready in {time.perf_counter() - started:.1f}s", flush=True)
            asyncio.run(warm_up(url, texts[:1]))
            for r in range(rounds):
                # Alternate the contenders so drift in the machine's load hits all of them.
                measured["direct"].append(baseline(direct_model, texts))
                measured["direct-1-thread"].append(baseline(direct_model, texts, threads=1))
                for per_request in (1, 8):
                    key = f"stack-{per_request}"
                    result = asyncio.run(through_stack(url, texts, per_request))
                    if result.errors:
                        print(f"{key}: {result.errors} errors, first: {result.first_error}")
                    measured[key].append(result.unit_rate)
                    latency[key].append(result)
                print(
                    f"  round {r + 1}: direct {measured['direct'][-1]:.0f} texts/s, "
                    f"direct 1 thread {measured['direct-1-thread'][-1]:.0f}, "
                    f"stack 1/req {measured['stack-1'][-1]:.0f}, "
                    f"stack 8/req {measured['stack-8'][-1]:.0f}",
                    flush=True,
                )

    default_threads = c.median(measured["direct"])
    one_thread = c.median(measured["direct-1-thread"])
    # The baseline is the faster of the two: on a busy machine torch's default thread
    # count can collapse (OpenMP threads spin while another process holds a core).
    direct = max(default_threads, one_thread)
    rows = [
        [
            f"direct encode(batch_size=32), {threads} torch threads (default)",
            default_threads,
            c.fmt_ratio(c.ratio(default_threads, direct)),
            "-",
            "-",
        ],
        [
            "direct encode(batch_size=32), 1 torch thread",
            one_thread,
            c.fmt_ratio(c.ratio(one_thread, direct)),
            "-",
            "-",
        ],
    ]
    results: dict[str, Any] = {
        "torch_threads": threads,
        "direct": {"texts_per_s": measured["direct"]},
        "direct-1-thread": {"texts_per_s": measured["direct-1-thread"]},
    }
    met_all = True
    lines = []
    for per_request in (1, 8):
        key = f"stack-{per_request}"
        rate = c.median(measured[key])
        p50 = c.median([r.p50_ms for r in latency[key]])
        p99 = c.median([r.p99_ms for r in latency[key]])
        rows.append(
            [
                f"stack, {CLIENTS} clients x {per_request} text(s)/request",
                rate,
                c.fmt_ratio(c.ratio(rate, direct)),
                c.fmt(p50, 1),
                c.fmt(p99, 1),
            ]
        )
        line, met = c.check_line(
            f"stack {per_request} text(s)/request vs best direct", c.ratio(rate, direct), GOAL
        )
        lines.append(line)
        met_all &= met
        results[key] = {
            "texts_per_s": measured[key],
            "runs": [r.summary() for r in latency[key]],
        }
    print()
    print(
        c.format_table(
            ["path", "texts/s", "vs best direct", "p50 ms", "p99 ms"],
            rows,
            title=f"Embeddings, {MODEL}: {n} texts per round, median of {rounds} round(s)",
        )
    )
    print(
        "\nbest direct: the faster of the two direct rows. 1 torch thread is also what the "
        "stack's model server gets\n(Ray sets OMP_NUM_THREADS to the replica's num_cpus, 1)."
    )
    print("\n".join(lines))
    c.write_json(
        args.json,
        {
            "benchmark": "embeddings",
            "texts": n,
            "rounds": rounds,
            "clients": CLIENTS,
            "goal": GOAL,
            "goal_met": met_all,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
