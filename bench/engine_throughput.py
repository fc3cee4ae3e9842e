"""Throughput of the transformers engine: one request alone vs N concurrent requests.

    python bench/engine_throughput.py [--model SmolLM2-135M-Instruct] [--n 8] [--repeat 3]

Single and concurrent runs alternate `--repeat` times and the best of each is reported, so a
burst of unrelated load on a shared machine does not decide the ratio. Greedy decoding with a fixed `max_tokens` and no stop strings. A request may still end early
at the model's end-of-turn token; tokens/s counts the tokens actually generated.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from stackray.providers.inline.inference.transformers import (
    GenerationRequest,
    TransformersEngine,
)

PROMPTS = [
    "Write a long story about a dragon who learns to bake bread.",
    "Explain in detail how a car engine works.",
    "Describe the history of the Roman Empire.",
    "Write a detailed recipe for chocolate cake.",
    "Explain photosynthesis to a ten year old, at length.",
    "Write a travel guide for Paris.",
    "Describe how computers store numbers.",
    "Write a poem about autumn leaves, then explain it.",
]


async def _one(engine: TransformersEngine, prompt: str, max_tokens: int) -> int:
    text = engine.render_chat([{"role": "user", "content": prompt}])
    tokens = 0
    async for chunk in engine.generate(GenerationRequest(prompt=text, max_tokens=max_tokens)):
        tokens = chunk.completion_tokens
    return tokens


async def _run(engine: TransformersEngine, n: int, max_tokens: int) -> tuple[int, float]:
    start = time.perf_counter()
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    counts = await asyncio.gather(*(_one(engine, p, max_tokens) for p in prompts))
    return sum(counts), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "stackray-models"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    engine = TransformersEngine(
        args.model, cache_dir=Path(args.cache_dir), device=args.device, max_batch_size=args.n
    )
    try:
        asyncio.run(_run(engine, 1, 8))  # warm-up
        singles, batches = [], []
        for i in range(args.repeat):
            singles.append(asyncio.run(_run(engine, 1, args.max_tokens)))
            batches.append(asyncio.run(_run(engine, args.n, args.max_tokens)))
            s_tok, s_s = singles[-1]
            b_tok, b_s = batches[-1]
            print(
                f"round {i + 1}: single {s_tok / s_s:.1f} tokens/s, "
                f"{args.n} concurrent {b_tok / b_s:.1f} tokens/s",
                flush=True,
            )
    finally:
        engine.shutdown()
    single_tokens, single_s = max(singles, key=lambda r: r[0] / r[1])
    batch_tokens, batch_s = max(batches, key=lambda r: r[0] / r[1])
    single_tps = single_tokens / single_s
    batch_tps = batch_tokens / batch_s
    print(f"device: {engine.device}")
    print(f"best single: {single_tokens} tokens in {single_s:.2f}s = {single_tps:.1f} tokens/s")
    print(
        f"best {args.n} concurrent: {batch_tokens} tokens in {batch_s:.2f}s "
        f"= {batch_tps:.1f} tokens/s"
    )
    print(f"speed-up: {batch_tps / single_tps:.2f}x")


if __name__ == "__main__":
    main()
