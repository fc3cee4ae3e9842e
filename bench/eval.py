"""Eval throughput: a benchmark's rows through the eval API vs one row at a time.

A loopback OpenAI-compatible backend (`remote_gateway.py --backend 0`, answering at once)
sits behind `remote::vllm`; the stack (inference, datasetio, scoring, eval) runs under
real Ray Serve in this process. For N rows (200 by default) scored with
`basic::subset_of`:

- `eval API`: one `run_eval` job, polled until it completes (rows/s = N / wall time);
- `one at a time`: each row's chat completion through the gateway, then its score
  through `/v1/scoring/score`, one row after the other (what Llama Stack 0.2.12's eval
  does inside its server).

With `--local-model`, the candidate is the local distribution's SmolLM2 model instead
(`--rows` small: it is a CPU model).

    python bench/eval.py [--rows N] [--concurrency N] [--local-model] [--json PATH]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c
import httpx

HERE = Path(__file__).resolve().parent
MARK = "@@bench "


def start_backend() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "remote_gateway.py"), "--backend", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(MARK):
            return proc, json.loads(line[len(MARK) :])["url"]
    raise RuntimeError("the backend did not start")


def config(data_dir: str, backend_url: str | None, concurrency: int) -> tuple[dict[str, Any], str]:
    if backend_url is None:
        providers = [c.local_provider("transformers")]
        models = c.local_models("transformers")
        model = "SmolLM2-135M-Instruct"
    else:
        providers = [
            {
                "provider_id": "vllm",
                "provider_type": "remote::vllm",
                "config": {"url": f"{backend_url}/v1"},
            }
        ]
        models = [{"model_id": "zero-model", "provider_id": "vllm"}]
        model = "zero-model"
    raw = c.stack_config(data_dir, providers, models)
    raw["apis"] = ["inference", "datasetio", "scoring", "eval"]
    raw["providers"]["datasetio"] = [{"provider_id": "localfs", "provider_type": "inline::localfs"}]
    raw["providers"]["scoring"] = [{"provider_id": "basic", "provider_type": "inline::basic"}]
    raw["providers"]["eval"] = [
        {
            "provider_id": "meta-reference",
            "provider_type": "inline::meta-reference",
            "config": {"max_concurrency": concurrency},
        }
    ]
    return raw, model


def run(rows: int, concurrency: int, local_model: bool) -> dict[str, Any]:
    backend = None
    url = None
    if not local_model:
        backend, url = start_backend()
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            raw, model = config(data_dir, url, concurrency)
            with c.running_stack(raw) as base, httpx.Client(base_url=base, timeout=600) as http:
                data = [
                    {"input_query": f"Say hello ({i})", "expected_answer": "Hello"}
                    for i in range(rows)
                ]
                http.post(
                    "/v1/datasets",
                    json={
                        "dataset_id": "bench",
                        "purpose": "eval/question-answer",
                        "source": {"type": "rows", "rows": data},
                    },
                ).raise_for_status()
                http.post(
                    "/v1/eval/benchmarks",
                    json={
                        "benchmark_id": "bench",
                        "dataset_id": "bench",
                        "scoring_functions": ["basic::subset_of"],
                    },
                ).raise_for_status()
                sampling = {"strategy": {"type": "greedy"}, "max_tokens": 16}
                candidate = {"type": "model", "model": model, "sampling_params": sampling}
                # Warm up: one row each way (the eval replica's own inference router and
                # its connection to the backend, the gateway's, the scoring replica).
                http.post(
                    "/v1/inference/chat-completion",
                    json={"model_id": model, "messages": [{"role": "user", "content": "hi"}]},
                ).raise_for_status()
                http.post(
                    "/v1/eval/benchmarks/bench/evaluations",
                    json={
                        "input_rows": data[:8],
                        "scoring_functions": ["basic::subset_of"],
                        "benchmark_config": {"eval_candidate": candidate, "scoring_params": {}},
                    },
                ).raise_for_status()

                t0 = time.perf_counter()
                job = http.post(
                    "/v1/eval/benchmarks/bench/jobs",
                    json={"benchmark_config": {"eval_candidate": candidate, "scoring_params": {}}},
                ).json()
                while True:
                    status = http.get(f"/v1/eval/benchmarks/bench/jobs/{job['job_id']}").json()
                    if status["status"] in ("completed", "failed", "cancelled"):
                        break
                    time.sleep(0.02)
                eval_s = time.perf_counter() - t0
                assert status["status"] == "completed", status
                result = http.get(f"/v1/eval/benchmarks/bench/jobs/{job['job_id']}/result").json()
                accuracy = result["scores"]["basic::subset_of"]["aggregated_results"]["accuracy"]

                t0 = time.perf_counter()
                for row in data:
                    chat = http.post(
                        "/v1/inference/chat-completion",
                        json={
                            "model_id": model,
                            "messages": [{"role": "user", "content": row["input_query"]}],
                            "sampling_params": sampling,
                        },
                    ).json()
                    answer = chat["completion_message"]["content"]
                    http.post(
                        "/v1/scoring/score",
                        json={
                            "input_rows": [{**row, "generated_answer": answer}],
                            "scoring_functions": {"basic::subset_of": None},
                        },
                    ).raise_for_status()
                sequential_s = time.perf_counter() - t0
    finally:
        if backend is not None:
            backend.kill()
    return {
        "rows": rows,
        "concurrency": concurrency,
        "candidate": model,
        "eval_rows_per_s": rows / eval_s,
        "sequential_rows_per_s": rows / sequential_s,
        "ratio": sequential_s / eval_s,
        "accuracy": accuracy["accuracy"],
    }


def main() -> int:
    parser = c.base_parser(__doc__ or "")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--local-model", action="store_true")
    args = parser.parse_args()
    out = run(args.rows, args.concurrency, args.local_model)
    print(
        c.format_table(
            [
                "candidate",
                "rows",
                "concurrency",
                "eval API rows/s",
                "one at a time rows/s",
                "ratio",
            ],
            [
                [
                    out["candidate"],
                    out["rows"],
                    out["concurrency"],
                    c.fmt(out["eval_rows_per_s"]),
                    c.fmt(out["sequential_rows_per_s"]),
                    c.fmt_ratio(out["ratio"]),
                ]
            ],
            title="eval throughput",
        )
    )
    c.write_json(getattr(args, "json", None), {"machine": c.machine_info(), **out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
