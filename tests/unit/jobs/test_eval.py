"""The eval Ray job (`stackray.jobs.eval`): arguments, and a whole run over HTTP (`--url`)
against the gateway on loopback with a local Ray for Ray Data; the result is read back
through the eval API as the job's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackray.jobs import eval as eval_job
from stackray.jobs.eval import parse_args
from tests.unit.support.remote_servers import FakeService
from tests.unit.support.scripted_model import ScriptedModel


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--num-examples", "0"], "--num-examples must be at least 1"),
        (["--url", "localhost:8321"], "--url must be an http(s) URL"),
    ],
)
def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str], extra, message) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--benchmark-id", "b", "--model", "m", *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def stack_config(model: ScriptedModel, data_dir: Path) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "eval-job-test",
        "apis": ["inference", "datasetio", "scoring", "eval"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{model.url}/v1", "retry_backoff_s": 0.01},
                }
            ],
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs"}],
            "scoring": [{"provider_id": "basic", "provider_type": "inline::basic"}],
            "eval": [{"provider_id": "meta-reference", "provider_type": "inline::meta-reference"}],
        },
        "models": [
            {"model_id": "candidate", "provider_id": "vllm", "provider_model_id": "scripted"}
        ],
        "storage": {"data_dir": str(data_dir)},
    }


class Served:
    def __init__(self, config: dict[str, Any]) -> None:
        from llama_stack_client import LlamaStackClient

        from stackray.deployments.gateway import create_gateway_app
        from stackray.runtime.config import parse_config
        from stackray.runtime.graph import build_local_stack

        stack = parse_config(config)
        routers = asyncio.run(build_local_stack(stack))
        self.server = FakeService(lambda _svc: create_gateway_app(stack, routers)).start()
        self.url = self.server.url
        self.client = LlamaStackClient(base_url=self.url, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Served, Path, ScriptedModel]]:
    import ray

    model = ScriptedModel().start()
    data_dir = tmp_path_factory.mktemp("stack")
    config = stack_config(model, data_dir)
    config_path = data_dir / "run.yaml"
    config_path.write_text(yaml.safe_dump(config))
    s = Served(config)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield s, config_path, model
    finally:
        ray.shutdown()
        s.server.stop()
        model.stop()


def test_a_benchmark_runs_as_a_ray_job_and_the_eval_api_reads_its_result(served) -> None:
    s, config_path, model = served
    rows = [{"input_query": f"say {w}", "expected_answer": w} for w in ("red", "green", "blue")]
    rows.append({"input_query": "say nothing", "expected_answer": "purple"})
    rows.append({"input_query": None, "expected_answer": "no input"})
    s.client.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id="colors"
    )
    s.client.benchmarks.register(
        benchmark_id="colors", dataset_id="colors", scoring_functions=["basic::subset_of"]
    )
    argv = ["--benchmark-id", "colors", "--model", "candidate", "--url", s.url]
    argv += ["--config", str(config_path), "--batch-size", "2", "--workers", "2"]
    summary = eval_job.run(parse_args(argv))
    assert summary["status"] == "completed" and summary["rows"] == 5
    assert summary["failed_rows"] == 1
    accuracy = summary["aggregated_results"]["basic::subset_of"]["accuracy"]
    assert accuracy == {"accuracy": 0.75, "num_correct": 3.0, "num_total": 4}
    assert len(model.chats) == 4  # the row without input is never asked

    job_id = summary["job_id"]
    assert s.client.eval.jobs.status(job_id, benchmark_id="colors").status == "completed"
    result = s.client.eval.jobs.retrieve(job_id, benchmark_id="colors")
    assert [g["generated_answer"] for g in result.generations[:4]] == [
        "echo: say red",
        "echo: say green",
        "echo: say blue",
        "echo: say nothing",
    ]
    assert "none of the input columns" in result.generations[4]["error"]
    assert [r["score"] for r in result.scores["basic::subset_of"].score_rows] == [
        1.0,
        1.0,
        1.0,
        0.0,
        None,
    ]

    # Resuming a completed job asks nothing again.
    again = eval_job.run(parse_args([*argv, "--job-id", job_id]))
    assert again["status"] == "completed" and len(model.chats) == 4
