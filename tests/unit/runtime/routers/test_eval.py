"""The eval and benchmarks APIs through the gateway, with the real `llama-stack-client`
over HTTP, on an in-process stack whose candidate model is a scripted model behind
`remote::vllm`: jobs run, report progress, fail rows without failing, cancel, and resume
after a restart from their finished rows; evaluate_rows answers at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import pytest
from llama_stack_client import LlamaStackClient

from stackray.api.errors import ConfigError
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.remote_servers import FakeService
from tests.unit.support.scripted_model import Reply, ScriptedModel, default_reply

MODEL = "candidate"

ROWS = [
    {"input_query": "say paris", "expected_answer": "paris"},
    {"input_query": "say rome", "expected_answer": "london"},
    {
        "input_query": "q",
        "expected_answer": "tokyo",
        "chat_completion_input": '[{"role": "user", "content": "say tokyo"}]',
    },
    {"input_query": "say oslo", "expected_answer": "oslo"},
]


def stack_config(model: ScriptedModel, data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "eval-test",
        "apis": ["inference", "datasetio", "scoring", "eval"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{model.url}/v1", "retry_backoff_s": 0.01, "max_retries": 0},
                }
            ],
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs"}],
            "scoring": [{"provider_id": "basic", "provider_type": "inline::basic"}],
            "eval": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": {"max_concurrency": 2, "heartbeat_s": 0.1, "stale_after_s": 0.5},
                }
            ],
        },
        "models": [
            {"model_id": MODEL, "provider_id": "vllm", "provider_model_id": "scripted"},
            {
                "model_id": "embedder",
                "provider_id": "vllm",
                "provider_model_id": "scripted-embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
        "storage": {"data_dir": str(data_dir)},
        **extra,
    }


class Clients:
    def __init__(self, config: dict[str, Any]) -> None:
        stack = parse_config(config)
        routers = asyncio.run(build_local_stack(stack))
        self.server = FakeService(lambda _: create_gateway_app(stack, routers)).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        self.llama = LlamaStackClient(base_url=self.server.url, max_retries=0, timeout=30)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture(scope="module")
def _model() -> Iterator[ScriptedModel]:
    model = ScriptedModel().start()
    yield model
    model.stop()


@pytest.fixture()
def model(_model: ScriptedModel) -> ScriptedModel:
    return _model.reset()


@pytest.fixture()
def clients(model: ScriptedModel, tmp_path: Path) -> Iterator[Clients]:
    c = Clients(stack_config(model, tmp_path))
    yield c
    c.close()


CANDIDATE = {
    "type": "model",
    "model": MODEL,
    "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": 16},
}


def setup_benchmark(c: Clients, rows: list[dict[str, Any]] = ROWS, bench: str = "cities") -> None:
    c.llama.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id=bench
    )
    c.llama.benchmarks.register(
        benchmark_id=bench, dataset_id=bench, scoring_functions=["basic::subset_of"]
    )


def wait_for(c: Clients, bench: str, job_id: str, status: str, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while True:
        got = c.llama.eval.jobs.status(job_id, benchmark_id=bench)
        if got is not None and got.status == status:
            return
        assert time.monotonic() < deadline, f"job {job_id} is {got and got.status}, not {status}"
        time.sleep(0.05)


def progress(c: Clients, bench: str, job_id: str) -> dict[str, Any]:
    return c.http.get(f"/v1/eval/benchmarks/{bench}/jobs/{job_id}/progress").json()  # type: ignore[no-any-return]


def slow(seconds: float):
    def reply(body: dict[str, Any]) -> Reply:
        time.sleep(seconds)
        return default_reply(body)

    return reply


# ---- benchmarks ------------------------------------------------------------------------


def test_benchmarks_register_list_get_and_bad_input(clients):
    setup_benchmark(clients)
    bench = clients.llama.benchmarks.retrieve("cities")
    assert (bench.dataset_id, bench.scoring_functions, bench.provider_id) == (
        "cities",
        ["basic::subset_of"],
        "meta-reference",
    )
    assert [b.identifier for b in clients.llama.benchmarks.list()] == ["cities"]
    with pytest.raises(llama_stack_client.NotFoundError, match="'nope'"):
        clients.llama.benchmarks.retrieve("nope")
    r = clients.http.post(
        "/v1/eval/benchmarks",
        json={"benchmark_id": "b", "dataset_id": "ghost", "scoring_functions": ["basic::equality"]},
    )
    assert r.status_code == 404 and "'ghost'" in r.json()["error"]["message"]
    r = clients.http.post(
        "/v1/eval/benchmarks",
        json={"benchmark_id": "b", "dataset_id": "cities", "scoring_functions": ["basic::nope"]},
    )
    assert r.status_code == 404 and "'basic::nope'" in r.json()["error"]["message"]


# ---- jobs ------------------------------------------------------------------------------


def test_a_job_runs_every_row_and_is_scored(clients, model):
    setup_benchmark(clients)
    job = clients.llama.eval.run_eval(
        benchmark_id="cities", benchmark_config={"eval_candidate": CANDIDATE, "scoring_params": {}}
    )
    assert job.status == "scheduled" and job.job_id.startswith("evaljob-")
    wait_for(clients, "cities", job.job_id, "completed")
    result = clients.llama.eval.jobs.retrieve(job.job_id, benchmark_id="cities")
    answers = [g["generated_answer"] for g in result.generations]
    assert answers == ["echo: say paris", "echo: say rome", "echo: say tokyo", "echo: say oslo"]
    scores = result.scores["basic::subset_of"]
    assert [r["score"] for r in scores.score_rows] == [1.0, 0.0, 1.0, 1.0]
    assert scores.aggregated_results["accuracy"]["accuracy"] == 0.75
    done = progress(clients, "cities", job.job_id)
    assert (done["status"], done["total"], done["done"], done["failed_rows"]) == (
        "completed",
        4,
        4,
        0,
    )
    assert done["rows_per_s"] > 0
    # The candidate's sampling params went with each request.
    assert {c["max_tokens"] for c in model.chats} == {16}


def test_num_examples_and_a_system_message(clients, model):
    setup_benchmark(clients)
    candidate = {**CANDIDATE, "system_message": {"role": "system", "content": "Be brief."}}
    job = clients.llama.eval.run_eval(
        benchmark_id="cities",
        benchmark_config={"eval_candidate": candidate, "scoring_params": {}, "num_examples": 2},
    )
    wait_for(clients, "cities", job.job_id, "completed")
    result = clients.llama.eval.jobs.retrieve(job.job_id, benchmark_id="cities")
    assert len(result.generations) == 2
    assert all(c["messages"][0] == {"role": "system", "content": "Be brief."} for c in model.chats)


def test_a_failing_row_is_recorded_and_the_job_completes(clients, model):
    rows = [*ROWS[:2], {"input_query": None, "expected_answer": "nothing to ask"}]
    setup_benchmark(clients, rows, bench="partial")
    job = clients.llama.eval.run_eval(
        benchmark_id="partial", benchmark_config={"eval_candidate": CANDIDATE, "scoring_params": {}}
    )
    wait_for(clients, "partial", job.job_id, "completed")
    result = clients.llama.eval.jobs.retrieve(job.job_id, benchmark_id="partial")
    assert result.generations[2]["generated_answer"] is None
    assert "none of the input columns" in result.generations[2]["error"]
    rows_scored = result.scores["basic::subset_of"].score_rows
    assert [r["score"] for r in rows_scored] == [1.0, 0.0, None]
    assert progress(clients, "partial", job.job_id)["failed_rows"] == 1


def test_cancel_stops_the_work(clients, model):
    rows = [{"input_query": f"say {i}", "expected_answer": str(i)} for i in range(30)]
    setup_benchmark(clients, rows, bench="long")
    model.play(*[slow(0.1)] * 30)
    job = clients.llama.eval.run_eval(
        benchmark_id="long", benchmark_config={"eval_candidate": CANDIDATE, "scoring_params": {}}
    )
    wait_for(clients, "long", job.job_id, "in_progress")
    time.sleep(0.3)
    clients.llama.eval.jobs.cancel(job.job_id, benchmark_id="long")
    wait_for(clients, "long", job.job_id, "cancelled")
    time.sleep(0.5)
    calls = len(model.chats)
    time.sleep(0.5)
    assert len(model.chats) == calls < 30  # nothing more is asked
    r = clients.http.get(f"/v1/eval/benchmarks/long/jobs/{job.job_id}/result")
    assert r.status_code == 400 and "cancelled" in r.json()["error"]["message"]


def test_an_interrupted_job_resumes_after_a_restart_from_its_finished_rows(model, tmp_path):
    rows = [{"input_query": f"say {i}", "expected_answer": str(i)} for i in range(12)]
    config = stack_config(model, tmp_path)
    first = Clients(config)
    setup_benchmark(first, rows, bench="resumable")
    model.play(*[slow(0.15)] * 12)
    job = first.llama.eval.run_eval(
        benchmark_id="resumable",
        benchmark_config={"eval_candidate": CANDIDATE, "scoring_params": {}},
    )
    deadline = time.monotonic() + 10
    while progress(first, "resumable", job.job_id)["done"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.close()  # the stack goes away mid-job: its replica's work ends with it
    asked_before = len(model.chats)
    assert asked_before < 12
    model.script.clear()

    second = Clients(config)
    try:
        wait_for(second, "resumable", job.job_id, "completed", within_s=20)
        state = progress(second, "resumable", job.job_id)
        assert state["resumed"] == 1 and state["done"] == 12
        # The rows stored before the restart (progress counts stored rows: 3 or more)
        # were not asked again: from scratch the restarted stack would ask all 12. (A
        # request the first stack had in flight may reach the model after the count.)
        assert len(model.chats) - asked_before < 12
        result = second.llama.eval.jobs.retrieve(job.job_id, benchmark_id="resumable")
        assert [g["generated_answer"] for g in result.generations] == [
            f"echo: say {i}" for i in range(12)
        ]
    finally:
        second.close()


def test_bad_candidates_and_unknown_jobs(clients):
    setup_benchmark(clients)
    for candidate, field in (
        ({**CANDIDATE, "model": "ghost"}, "benchmark_config.eval_candidate.model"),
        ({**CANDIDATE, "model": "embedder"}, "benchmark_config.eval_candidate.model"),
    ):
        r = clients.http.post(
            "/v1/eval/benchmarks/cities/jobs",
            json={"benchmark_config": {"eval_candidate": candidate, "scoring_params": {}}},
        )
        assert r.status_code == 400 and r.json()["error"]["field"] == field
    r = clients.http.post(
        "/v1/eval/benchmarks/cities/jobs",
        json={
            "benchmark_config": {
                "eval_candidate": CANDIDATE,
                "scoring_params": {"basic::equality": {"type": "basic"}},
            }
        },
    )
    assert r.status_code == 400 and "does not score with" in r.json()["error"]["message"]
    r = clients.http.get("/v1/eval/benchmarks/cities/jobs/evaljob-nope")
    assert r.status_code == 404 and "'evaljob-nope'" in r.json()["error"]["message"]
    r = clients.http.post(
        "/v1/eval/benchmarks/ghost/jobs",
        json={"benchmark_config": {"eval_candidate": CANDIDATE, "scoring_params": {}}},
    )
    assert r.status_code == 404


# ---- evaluate_rows ---------------------------------------------------------------------


def test_evaluate_rows_answers_and_scores_at_once(clients):
    setup_benchmark(clients)
    result = clients.llama.eval.evaluate_rows(
        benchmark_id="cities",
        input_rows=ROWS[:2],
        scoring_functions=["basic::subset_of", "basic::equality"],
        benchmark_config={"eval_candidate": CANDIDATE, "scoring_params": {}},
    )
    assert [g["generated_answer"] for g in result.generations] == [
        "echo: say paris",
        "echo: say rome",
    ]
    assert [r["score"] for r in result.scores["basic::subset_of"].score_rows] == [1.0, 0.0]
    assert [r["score"] for r in result.scores["basic::equality"].score_rows] == [0.0, 0.0]


# ---- the run config --------------------------------------------------------------------


def test_config_benchmarks_are_registered_at_start(model, tmp_path):
    config = stack_config(
        model,
        tmp_path,
        datasets=[
            {
                "dataset_id": "cfg",
                "purpose": "eval/question-answer",
                "source": {"type": "rows", "rows": ROWS},
            }
        ],
        benchmarks=[
            {
                "benchmark_id": "cfg-bench",
                "dataset_id": "cfg",
                "scoring_functions": ["basic::equality"],
            }
        ],
    )
    c = Clients(config)
    try:
        assert c.llama.benchmarks.retrieve("cfg-bench").dataset_id == "cfg"
    finally:
        c.close()
    unserved = stack_config(model, tmp_path, benchmarks=config["benchmarks"])
    unserved["apis"] = ["inference", "datasetio", "scoring"]
    with pytest.raises(ConfigError, match="needs the eval API"):
        parse_config(unserved)


def test_an_agent_candidate_answers_each_row_in_a_session_of_its_own(model, tmp_path):
    config = stack_config(model, tmp_path)
    config["apis"].append("agents")
    config["providers"]["agents"] = [
        {"provider_id": "meta-reference", "provider_type": "inline::meta-reference"}
    ]
    c = Clients(config)
    try:
        setup_benchmark(c, ROWS[:2], bench="agentic")
        agent = {
            "type": "agent",
            "config": {"model": MODEL, "instructions": "You answer with the city."},
        }
        result = c.llama.eval.evaluate_rows(
            benchmark_id="agentic",
            input_rows=ROWS[:2],
            scoring_functions=["basic::subset_of"],
            benchmark_config={"eval_candidate": agent, "scoring_params": {}},
        )
        assert [g["generated_answer"] for g in result.generations] == [
            "echo: say paris",
            "echo: say rome",
        ]
        # The agent's instructions went first, each row in its own session.
        assert all(
            ch["messages"][0]["content"] == "You answer with the city." for ch in model.chats
        )
        assert all(
            len([m for m in ch["messages"] if m["role"] == "user"]) == 1 for ch in model.chats
        )
        # The agent made for the evaluation is gone afterwards.
        assert c.http.get("/v1/agents").json()["data"] == []
    finally:
        c.close()
