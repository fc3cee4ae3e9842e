"""Eval on the shared Serve stack with the real `llama-stack-client`: a benchmark over a
small dataset, a job answered by the local SmolLM2 model (and by the echo model, whose
answers are known) and scored: gateway -> eval deployment -> datasetio, the model server
(through the eval replica's inference router) and scoring."""

from __future__ import annotations

import time

from tests.integration.conftest import MODEL

ROWS = [
    {
        "input_query": "What is the capital of France? Answer in one word.",
        "expected_answer": "Paris",
    },
    {"input_query": "What is 2 + 2? Answer with a number.", "expected_answer": "4"},
    {"input_query": "Say the word blue.", "expected_answer": "blue"},
]


def wait_completed(client, benchmark_id: str, job_id: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        status = client.eval.jobs.status(job_id, benchmark_id=benchmark_id).status
        assert status not in ("failed", "cancelled"), status
        if status == "completed":
            return
        assert time.monotonic() < deadline, f"job {job_id} still {status}"
        time.sleep(0.5)


def test_a_small_benchmark_completes_and_is_scored(stack) -> None:
    client = stack.client()
    client.datasets.register(
        purpose="eval/question-answer",
        source={"type": "rows", "rows": ROWS},
        dataset_id="integration-eval",
    )
    client.benchmarks.register(
        benchmark_id="integration-eval",
        dataset_id="integration-eval",
        scoring_functions=["basic::subset_of"],
    )
    assert client.benchmarks.retrieve("integration-eval").provider_id == "meta-reference"

    # The echo model's answers contain the question, so the scores are known.
    echo = client.eval.run_eval(
        benchmark_id="integration-eval",
        benchmark_config={
            "eval_candidate": {"type": "model", "model": "echo-model", "sampling_params": {}},
            "scoring_params": {},
        },
    )
    wait_completed(client, "integration-eval", echo.job_id, within_s=60)
    result = client.eval.jobs.retrieve(echo.job_id, benchmark_id="integration-eval")
    assert [g["generated_answer"] for g in result.generations] == [
        f"echo: {r['input_query']}" for r in ROWS
    ]
    assert [r["score"] for r in result.scores["basic::subset_of"].score_rows] == [0.0, 0.0, 1.0]

    # The local model: every row answered and scored.
    local = client.eval.run_eval(
        benchmark_id="integration-eval",
        benchmark_config={
            "eval_candidate": {
                "type": "model",
                "model": MODEL,
                "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 12},
            },
            "scoring_params": {},
        },
    )
    wait_completed(client, "integration-eval", local.job_id, within_s=240)
    result = client.eval.jobs.retrieve(local.job_id, benchmark_id="integration-eval")
    assert len(result.generations) == 3
    assert all(
        isinstance(g["generated_answer"], str) and g["generated_answer"] for g in result.generations
    )
    accuracy = result.scores["basic::subset_of"].aggregated_results["accuracy"]
    assert accuracy["num_total"] == 3 and 0.0 <= accuracy["accuracy"] <= 1.0
    with stack.http() as http:
        progress = http.get(
            f"/v1/eval/benchmarks/integration-eval/jobs/{local.job_id}/progress"
        ).json()
    assert progress["done"] == progress["total"] == 3 and progress["rows_per_s"] > 0
