"""Agent turn latency, broken down by step from the turns' recorded step timings, and
turns/s with 8 concurrent sessions vs 1.

The stack serves inference and agents on Serve (gateway -> agents deployment -> inference
deployment -> provider). Each turn is a non-streamed `POST .../turn`; the `Turn` it
returns carries every step with `started_at` / `completed_at`, which gives, per turn:
the time in each step type (inference, tool_execution, shield_call, memory_retrieval),
the agent's own time (turn duration minus its steps: store reads and writes, history),
and the path outside the turn (client latency minus turn duration: HTTP, gateway, handle).

The baseline, measured in the same run on the same stack, is one chat completion of the
same model through the gateway (`POST /v1/inference/chat-completion`): an agent turn
without tools is one such inference plus the agent's bookkeeping.

The default model is the external `remote::echo` provider (zero latency: what is
measured is the stack's own cost); `--local-model` uses SmolLM2-135M-Instruct on the local
distribution's `inline::transformers` instead.

`--input-shield code-scanner` adds the safety API (`inline::code-scanner`) and that input
shield to the agent. `--toolgroup builtin::rag` adds the tool runtime (`inline::rag-runtime`),
vector IO (`inline::faiss`) and the all-MiniLM-L6-v2 embedding model
(`inline::sentence-transformers`), fills a vector db with `DOCS` through the RAG tool's
insert, and gives the agent `builtin::rag` over it. The echo model never calls a tool:
`--tool-choice knowledge_search` (with `--local-model`) makes the model call it once per
turn (constrained decoding) and answer from its result (`max_infer_iters` 2), so the
breakdown shows a `tool_execution` step (the search: embed the query, faiss) per turn.

Sessions are used by one turn at a time and replaced after `--turns-per-session` turns
(a session's history grows with every turn).

    python bench/agents.py [--quick] [--json PATH] [--turns N] [--local-model]
        [--input-shield code-scanner] [--toolgroup builtin::rag] [--tool-choice NAME]
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from datetime import datetime
from typing import Any

import _common as c

CONCURRENCY = (1, 8)
KB = "bench-kb"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DOCS = [
    "Sourdough bread rises slowly thanks to wild yeast and lactic acid bacteria.",
    "A rocket engine burns propellant to produce thrust in the vacuum of space.",
    "Two plus two is four; addition of small integers is taught in first grade.",
    "Green tea is brewed from the unoxidized leaves of the Camellia sinensis plant.",
]


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class TurnStats:
    """Per-turn breakdowns collected while the load runs."""

    def __init__(self) -> None:
        self.by_step: dict[str, list[float]] = {}
        self.agent_own: list[float] = []
        self.outside: list[float] = []
        self.turn_total: list[float] = []

    def add(self, turn: dict[str, Any], latency: float) -> None:
        total = parse_time(turn["completed_at"]) - parse_time(turn["started_at"])
        steps = 0.0
        per_type: dict[str, float] = {}
        for step in turn["steps"]:
            d = parse_time(step["completed_at"]) - parse_time(step["started_at"])
            per_type[step["step_type"]] = per_type.get(step["step_type"], 0.0) + d
            steps += d
        for kind, d in per_type.items():
            self.by_step.setdefault(kind, []).append(d)
        self.turn_total.append(total)
        self.agent_own.append(total - steps)
        self.outside.append(latency - total)


async def measure(
    base_url: str,
    model: str,
    concurrency: int,
    turns: int,
    turns_per_session: int,
    agent_extra: dict[str, Any],
) -> tuple[c.LoadResult, TurnStats]:
    client = c.http_client(base_url, concurrency)
    stats = TurnStats()
    config = {
        "model": model,
        "instructions": "You are a helpful assistant.",
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 16},
        **agent_extra,
    }
    r = await client.post("/v1/agents", json={"agent_config": config})
    r.raise_for_status()
    agent_id = r.json()["agent_id"]
    sessions: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    async def new_session() -> str:
        r = await client.post(f"/v1/agents/{agent_id}/session", json={"session_name": "bench"})
        r.raise_for_status()
        return str(r.json()["session_id"])

    for _ in range(concurrency):
        sessions.put_nowait((await new_session(), 0))
    counter = itertools.count()

    async def turn() -> None:
        session_id, used = await sessions.get()
        try:
            t0 = asyncio.get_running_loop().time()
            r = await client.post(
                f"/v1/agents/{agent_id}/session/{session_id}/turn",
                json={
                    "messages": [
                        {"role": "user", "content": f"Question {next(counter)}: what is 2+2?"}
                    ],
                    "stream": False,
                },
            )
            latency = asyncio.get_running_loop().time() - t0
            if r.status_code >= 300:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
            stats.add(r.json(), latency)
        finally:
            used += 1
            if used >= turns_per_session:
                session_id, used = await new_session(), 0
            sessions.put_nowait((session_id, used))

    result = await c.run_load(turn, concurrency, requests=turns, warmup=concurrency)
    # The warmup turns were added to the stats too: keep the measured ones only.
    for values in (stats.agent_own, stats.outside, stats.turn_total, *stats.by_step.values()):
        del values[: len(values) - result.requests]
    await client.aclose()
    return result, stats


async def measure_chat(base_url: str, model: str, concurrency: int, requests: int) -> c.LoadResult:
    client = c.http_client(base_url, concurrency)
    body = {
        "model_id": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Question 0: what is 2+2?"},
        ],
        "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 16},
    }
    call = c.http_call(client, "/v1/inference/chat-completion", body)
    result = await c.run_load(call, concurrency, requests=requests, warmup=concurrency)
    await client.aclose()
    return result


def add_safety(config: dict[str, Any], shields: list[str]) -> None:
    """The safety API with `inline::code-scanner`, which serves each of `shields`."""
    config["apis"].append("safety")
    config["providers"]["safety"] = [
        {"provider_id": "code-scanner", "provider_type": "inline::code-scanner"}
    ]
    config["shields"] = [{"shield_id": s, "provider_id": "code-scanner"} for s in shields]


def add_tools(config: dict[str, Any], toolgroups: list[str]) -> list[Any]:
    """The tool runtime (and for `builtin::rag` vector IO and an embedding model); returns
    the agent's toolgroups."""
    config["apis"].append("tool_runtime")
    config["providers"]["tool_runtime"] = [
        {"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime"},
        {
            "provider_id": "model-context-protocol",
            "provider_type": "remote::model-context-protocol",
        },
    ]
    agent_groups: list[Any] = []
    for group in toolgroups:
        if group == "builtin::rag":
            config["tool_groups"] = [{"toolgroup_id": group, "provider_id": "rag-runtime"}]
            agent_groups.append({"name": group, "args": {"vector_db_ids": [KB]}})
        else:
            agent_groups.append(group)
    if "builtin::rag" in toolgroups:
        config["apis"].append("vector_io")
        config["providers"]["vector_io"] = [
            {"provider_id": "faiss", "provider_type": "inline::faiss"}
        ]
        config["providers"]["inference"].append(c.local_provider("sentence-transformers"))
        config["models"] += c.local_models("sentence-transformers")
    return agent_groups


async def fill_knowledge_base(base_url: str) -> None:
    client = c.http_client(base_url, 1)
    r = await client.post(
        "/v1/vector-dbs",
        json={"vector_db_id": KB, "embedding_model": EMBEDDING_MODEL, "provider_id": "faiss"},
    )
    r.raise_for_status()
    documents = [
        {"document_id": f"doc-{i}", "content": text, "mime_type": "text/plain"}
        for i, text in enumerate(DOCS)
    ]
    r = await client.post(
        "/v1/tool-runtime/rag-tool/insert",
        json={"vector_db_id": KB, "documents": documents, "chunk_size_in_tokens": 128},
    )
    r.raise_for_status()
    await client.aclose()


def ms(values: list[float]) -> float:
    return c.median(values) * 1000 if values else float("nan")


def main() -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=None, help="turns per concurrency level")
    parser.add_argument("--turns-per-session", type=int, default=10)
    parser.add_argument("--local-model", action="store_true", help="SmolLM2 instead of echo")
    parser.add_argument("--input-shield", action="append", default=[], help="a shield id")
    parser.add_argument("--toolgroup", action="append", default=[], help="a tool group id")
    parser.add_argument(
        "--tool-choice", default=None, help="force this tool on each turn's first inference"
    )
    args = parser.parse_args()
    turns = args.turns or (24 if args.quick else 120)

    data_dir = tempfile.mkdtemp(prefix="stackray-bench-agents-")
    if args.local_model:
        model = "SmolLM2-135M-Instruct"
        providers = [c.local_provider("transformers")]
        models = c.local_models("transformers")
    else:
        model = "echo-model"
        providers = [
            {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
        ]
        models = [{"model_id": "echo-model", "provider_id": "echo", "model_type": "llm"}]
    config = c.stack_config(data_dir, providers, models)
    config["apis"] = ["inference", "agents"]
    config["providers"]["agents"] = [
        {"provider_id": "meta-reference", "provider_type": "inline::meta-reference", "config": {}}
    ]
    agent_extra: dict[str, Any] = {}
    if args.input_shield:
        add_safety(config, args.input_shield)
        agent_extra["input_shields"] = args.input_shield
    if args.toolgroup:
        agent_extra["toolgroups"] = add_tools(config, args.toolgroup)
    if args.tool_choice:
        agent_extra["tool_config"] = {"tool_choice": args.tool_choice}
        agent_extra["max_infer_iters"] = 2
        # A forced call is a JSON object of ~40 tokens: 16 would cut it.
        agent_extra["sampling_params"] = {"strategy": {"type": "greedy"}, "max_tokens": 96}

    print(c.describe_environment())
    print(
        f"model: {model}; {turns} turns per concurrency level, {args.turns_per_session} per session"
    )
    results: dict[str, Any] = {"model": model, "turns": turns, "levels": {}}
    with c.running_stack(config) as base_url:
        if "builtin::rag" in args.toolgroup:
            asyncio.run(fill_knowledge_base(base_url))
        rows = []
        breakdown_rows = []
        step_kinds: list[str] = []
        for concurrency in CONCURRENCY:
            chat = asyncio.run(measure_chat(base_url, model, concurrency, turns))
            load, stats = asyncio.run(
                measure(base_url, model, concurrency, turns, args.turns_per_session, agent_extra)
            )
            if load.errors:
                print(f"c={concurrency}: {load.errors} failed turns, first: {load.first_error}")
            rows.append(
                [
                    concurrency,
                    load.throughput,
                    load.p50_ms,
                    load.p99_ms,
                    chat.throughput,
                    chat.p50_ms,
                    c.ratio(load.p50_ms, chat.p50_ms),
                ]
            )
            for kind in stats.by_step:
                if kind not in step_kinds:
                    step_kinds.append(kind)
            breakdown_rows.append(
                [
                    concurrency,
                    ms(stats.turn_total),
                    *[ms(stats.by_step.get(k, [])) for k in step_kinds],
                    ms(stats.agent_own),
                    ms(stats.outside),
                ]
            )
            results["levels"][str(concurrency)] = {
                "turns": load.summary(),
                "chat_completion": chat.summary(),
                "median_ms": {
                    "turn": ms(stats.turn_total),
                    **{k: ms(v) for k, v in stats.by_step.items()},
                    "agent_own": ms(stats.agent_own),
                    "outside_turn": ms(stats.outside),
                },
            }
    print(
        c.format_table(
            [
                "sessions",
                "turns/s",
                "p50 ms",
                "p99 ms",
                "chat req/s",
                "chat p50 ms",
                "turn/chat p50",
            ],
            rows,
            title="agent turns vs one chat completion (same stack, same run)",
        )
    )
    print(
        c.format_table(
            [
                "sessions",
                "turn ms",
                *[f"{k} ms" for k in step_kinds],
                "agent own ms",
                "outside turn ms",
            ],
            breakdown_rows,
            title="median time per turn, from the recorded step timings",
        )
    )
    one, eight = (results["levels"][str(n)]["turns"]["throughput_rps"] for n in CONCURRENCY)
    scaling = c.ratio(eight or float("nan"), one or float("nan"))
    print(f"turns/s with 8 sessions vs 1: {c.fmt_ratio(scaling)}")
    results["scaling_8_vs_1"] = scaling
    c.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
