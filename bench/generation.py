"""Generation throughput of SmolLM2-135M-Instruct through the stack vs. plain transformers.

The stack: `POST /v1/chat/completions` (inline::transformers), greedy, `max_tokens` 64,
prompts that ask for a long answer; tokens are the `usage.completion_tokens` the API
reports. 1 client sending requests one after another, then 8 concurrent clients.
The baseline, in the same run and process: `model.generate` on the same weights (the
safetensors copy the stack made of the packaged GGUF), greedy, exactly 64 new tokens,
batch of 1 and a left-padded batch of the 8 prompts, with as many torch threads as the
stack's model server uses (1 unless the provider sets num_threads).
Goal: the stack's aggregate tokens/s at 8 concurrent requests >= 3x its single-request figure.

    python bench/generation.py [--quick] [--json PATH] [--max-tokens N] [--rounds R]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

MODEL_ID = "SmolLM2-135M-Instruct"
PROVIDER_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GOAL = 3.0
TOPICS = [
    "a lighthouse keeper who finds a message in a bottle",
    "a dragon that is afraid of heights",
    "two rival bakers in a small mountain village",
    "a robot learning to paint",
    "a ship lost in a winter storm",
    "a detective who can talk to cats",
    "the last train through a desert town",
    "a child who builds a telescope from scrap",
]


def prompt(i: int) -> str:
    return (
        f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}. "
        "Describe every scene carefully and make it at least 500 words long."
    )


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "stackray-bench" / "models"


def find_converted_model(cache_dir: Path) -> Path | None:
    """The model directory (config.json + safetensors) the stack wrote under `cache_dir`."""
    for config in sorted(cache_dir.rglob("config.json")):
        if config.parent.name.startswith(".") or not list(config.parent.glob("*.safetensors")):
            continue
        return config.parent
    return None


def load_baseline_model(cache_dir: Path) -> tuple[Any, Any, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = find_converted_model(cache_dir)
    if path is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        where = str(path)
    else:  # a stack that keeps no converted copy: load the same way the provider does
        from stackray.providers.inline.inference.transformers.loader import (
            load_model,
            resolve_model_source,
        )

        model, tokenizer = load_model(resolve_model_source(PROVIDER_MODEL_ID), cache_dir, "cpu")
        where = f"loader.load_model({PROVIDER_MODEL_ID!r})"
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, where


def direct_generate(model: Any, tokenizer: Any, prompts: list[str], max_tokens: int) -> float:
    """Tokens per second of one greedy `generate` over `prompts` as one (padded) batch."""
    import torch

    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    elapsed = time.perf_counter() - t0
    new_tokens = (out.shape[1] - inputs["input_ids"].shape[1]) * len(prompts)
    return new_tokens / elapsed


async def through_stack(
    base_url: str, concurrency: int, requests: int, max_tokens: int, first: int = 0
) -> tuple[c.LoadResult, list[int]]:
    """`requests` chat completions from `concurrency` clients, prompts `first`, `first`+1 ..."""
    counter = iter(range(first, first + requests))
    tokens: list[int] = []

    def body() -> dict[str, Any]:
        return {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": prompt(next(counter))}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }

    def units(answer: dict[str, Any]) -> float:
        n = int(answer["usage"]["completion_tokens"])
        tokens.append(n)
        return float(n)

    async with c.http_client(base_url, concurrency) as client:
        call = c.http_call(client, "/v1/chat/completions", body, units)
        result = await c.run_load(call, concurrency, requests=requests)
    return result, tokens


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=None, help="per request (default 64)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds of 2 single requests and one wave of 8 (default 2, quick 1)",
    )
    parser.add_argument(
        "--direct-threads",
        type=int,
        default=None,
        help="torch threads of the direct baseline (default: what the stack's model server "
        "uses: the provider's num_threads, else 1, Ray's OMP_NUM_THREADS for num_cpus=1)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="where the provider keeps the converted model, reused across runs "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    print(c.describe_environment(), flush=True)
    max_tokens = args.max_tokens or (24 if args.quick else 64)
    rounds = args.rounds or (1 if args.quick else 2)
    single_requests = 2
    prompts8 = [prompt(i) for i in range(8)]

    c.quiet_environment()
    import torch

    provider = c.local_provider("transformers")
    provider["config"] = {**provider.get("config", {}), "cache_dir": str(args.cache_dir)}
    direct_threads = args.direct_threads or provider["config"].get("num_threads") or 1
    torch.set_num_threads(int(direct_threads))
    models = [
        {
            "model_id": MODEL_ID,
            "provider_id": "transformers",
            "provider_model_id": PROVIDER_MODEL_ID,
            "model_type": "llm",
        }
    ]
    runs: dict[str, list[float]] = {"direct-1": [], "direct-8": [], "stack-1": [], "stack-8": []}
    loads: dict[str, list[c.LoadResult]] = {"stack-1": [], "stack-8": []}
    short: list[int] = []

    def measure(key: str, result: c.LoadResult, tokens: list[int]) -> None:
        if result.errors:
            print(f"{key}: {result.errors} errors, first: {result.first_error}")
        runs[key].append(result.unit_rate)
        loads[key].append(result)
        short.extend(t for t in tokens if t < max_tokens)

    with tempfile.TemporaryDirectory(prefix="stackray-bench-") as tmp:
        config = c.stack_config(tmp, [provider], models)
        started = time.perf_counter()
        with c.running_stack(config) as url:
            print(f"stack ready in {time.perf_counter() - started:.1f}s", flush=True)
            model, tokenizer, where = load_baseline_model(args.cache_dir)
            print(f"baseline model: {where} (torch threads {torch.get_num_threads()})")
            # Warm up both paths (first calls pay for lazy initialisation).
            direct_generate(model, tokenizer, prompts8[:1], 4)
            asyncio.run(through_stack(url, 1, 1, 4))
            for r in range(rounds):
                # Alternate the contenders request by request, so that drift in the
                # machine's load hits both.
                for i in range(single_requests):
                    runs["direct-1"].append(
                        direct_generate(model, tokenizer, [prompt(i)], max_tokens)
                    )
                    measure("stack-1", *asyncio.run(through_stack(url, 1, 1, max_tokens, i)))
                runs["direct-8"].append(direct_generate(model, tokenizer, prompts8, max_tokens))
                measure("stack-8", *asyncio.run(through_stack(url, 8, 8, max_tokens)))
                print(
                    "  round {}: direct b1 {:.1f} tok/s, stack c1 {:.1f}, direct b8 {:.1f}, "
                    "stack c8 {:.1f}".format(
                        r + 1,
                        *(runs[k][-1] for k in ("direct-1", "stack-1", "direct-8", "stack-8")),
                    ),
                    flush=True,
                )

    med = {k: c.median(v) for k, v in runs.items()}
    rows = []
    for conc in (1, 8):
        d, s = med[f"direct-{conc}"], med[f"stack-{conc}"]
        lat = loads[f"stack-{conc}"]
        rows.append(
            [
                f"{conc} concurrent" if conc > 1 else "1 at a time",
                d,
                s,
                c.fmt_ratio(c.ratio(s, d)),
                c.fmt(c.median([r.p50_ms for r in lat]) / 1000, 2),
            ]
        )
    print()
    print(
        c.format_table(
            ["requests", "direct tok/s", "stack tok/s", "stack/direct", "stack p50 s"],
            rows,
            title=f"Generation, {MODEL_ID}: greedy, {max_tokens} tokens per request, "
            f"medians of {rounds * single_requests} (1) and {rounds} (8) sample(s)",
        )
    )
    scaling = c.ratio(med["stack-8"], med["stack-1"])
    print(
        f"\nscaling 1 -> 8: stack {c.fmt_ratio(scaling)}, "
        f"direct {c.fmt_ratio(c.ratio(med['direct-8'], med['direct-1']))}"
    )
    if short:
        print(f"note: {len(short)} answer(s) stopped before {max_tokens} tokens: {short}")
    line, met = c.check_line("stack tokens/s at 8 concurrent vs 1", scaling, GOAL)
    print(line)
    c.write_json(
        args.json,
        {
            "benchmark": "generation",
            "model": MODEL_ID,
            "max_tokens": max_tokens,
            "rounds": rounds,
            "goal": GOAL,
            "goal_met": met,
            "scaling_stack": scaling,
            "tokens_per_s": runs,
            "short_answers": short,
            "stack_runs": {k: [r.summary() for r in v] for k, v in loads.items()},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
