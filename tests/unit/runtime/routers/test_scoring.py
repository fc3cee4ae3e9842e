"""The scoring and scoring-functions APIs through the gateway, with the real
`llama-stack-client` over HTTP, on an in-process stack: the builtin functions, scoring
and score-batch (results saved as a dataset), registration, bad input, and the
llm-as-judge path with its judge on a scripted model behind `remote::vllm`."""

from __future__ import annotations

import asyncio
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
from tests.unit.support.scripted_model import Reply, ScriptedModel

JUDGE = "judge"

ROWS = [
    {"input_query": "2+2?", "expected_answer": "4", "generated_answer": "4"},
    {"input_query": "Capital of France?", "expected_answer": "Paris", "generated_answer": "Lyon"},
    {"input_query": "Sky?", "expected_answer": "blue", "generated_answer": "It is blue."},
]


def stack_config(model: ScriptedModel, data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "scoring-test",
        "apis": ["inference", "datasetio", "scoring"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{model.url}/v1", "retry_backoff_s": 0.01},
                }
            ],
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs"}],
            "scoring": [
                {"provider_id": "basic", "provider_type": "inline::basic"},
                {
                    "provider_id": "llm-as-judge",
                    "provider_type": "inline::llm-as-judge",
                    "config": {"judge_model": JUDGE, "max_concurrency": 2},
                },
            ],
        },
        "models": [
            {"model_id": JUDGE, "provider_id": "vllm", "provider_model_id": "scripted"},
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


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]  # type: ignore[no-any-return]


# ---- the registry ----------------------------------------------------------------------


def test_builtin_functions_are_listed_with_llama_stacks_ids(clients):
    listed = {f.identifier: f for f in clients.llama.scoring_functions.list()}
    assert set(listed) == {
        "basic::equality",
        "basic::subset_of",
        "basic::regex_parser_multiple_choice_answer",
        "basic::regex_parser_math_response",
        "basic::ifeval",
        "basic::docvqa",
        "basic::bfcl",
        "llm-as-judge::base",
        "llm-as-judge::405b-simpleqa",
    }
    simpleqa = clients.llama.scoring_functions.retrieve("llm-as-judge::405b-simpleqa")
    assert simpleqa.provider_id == "llm-as-judge" and simpleqa.return_type.type == "number"
    assert simpleqa.params.judge_model == JUDGE  # the provider's configured judge
    assert simpleqa.params.aggregation_functions == ["categorical_count"]
    mc = listed["basic::regex_parser_multiple_choice_answer"]
    assert mc.params.type == "regex_parser" and len(mc.params.parsing_regexes) > 10
    with pytest.raises(llama_stack_client.NotFoundError, match="'basic::nope'"):
        clients.llama.scoring_functions.retrieve("basic::nope")


def test_registering_a_function_on_a_builtin_with_its_own_params(clients):
    clients.llama.scoring_functions.register(
        scoring_fn_id="my-letter",
        description="A letter after 'Choice:'",
        return_type={"type": "number"},
        provider_id="basic",
        provider_scoring_fn_id="basic::regex_parser_multiple_choice_answer",
        params={
            "type": "regex_parser",
            "parsing_regexes": [r"Choice:\s*([A-D])"],
            "aggregation_functions": ["accuracy"],
        },
    )
    fn = clients.llama.scoring_functions.retrieve("my-letter")
    assert fn.provider_resource_id == "basic::regex_parser_multiple_choice_answer"
    result = clients.llama.scoring.score(
        input_rows=[
            {"expected_answer": "B", "generated_answer": "Choice: B"},
            {"expected_answer": "B", "generated_answer": "Answer: B"},
        ],
        scoring_functions={"my-letter": None},
    )
    assert [r["score"] for r in result.results["my-letter"].score_rows] == [1.0, 0.0]


def test_bad_registrations_are_400s(clients):
    cases = [
        ({"provider_id": "basic", "provider_scoring_fn_id": "nope"}, "provider_scoring_fn_id"),
        ({"provider_scoring_fn_id": "basic::equality"}, "provider_id"),  # two providers
        ({"provider_id": "ghost"}, "provider_id"),
        (
            {
                "provider_id": "llm-as-judge",
                "params": {
                    "type": "llm_as_judge",
                    "judge_model": "embedder",
                    "prompt_template": "{generated_answer}",
                    "judge_score_regexes": ["(\\d)"],
                },
            },
            "params.judge_model",
        ),
        (
            {
                "provider_id": "llm-as-judge",
                "params": {
                    "type": "llm_as_judge",
                    "judge_model": JUDGE,
                    "prompt_template": "Rate {answer}",
                    "judge_score_regexes": ["(\\d)"],
                },
            },
            "params.prompt_template",
        ),
    ]
    for extra, field in cases:
        body = {"scoring_fn_id": "f", "description": "d", "return_type": {"type": "number"}}
        r = clients.http.post("/v1/scoring-functions", json={**body, **extra})
        assert r.status_code == 400, (extra, r.text)
        assert error_of(r)["field"] == field, (extra, error_of(r))


# ---- scoring ---------------------------------------------------------------------------


def test_score_with_several_basic_functions(clients):
    result = clients.llama.scoring.score(
        input_rows=ROWS,
        scoring_functions={
            "basic::equality": None,
            "basic::subset_of": {"type": "basic", "aggregation_functions": ["accuracy", "median"]},
        },
    )
    equality = result.results["basic::equality"]
    assert [r["score"] for r in equality.score_rows] == [1.0, 0.0, 0.0]
    assert equality.aggregated_results == {
        "accuracy": {"accuracy": 1 / 3, "num_correct": 1.0, "num_total": 3}
    }
    subset = result.results["basic::subset_of"]
    assert [r["score"] for r in subset.score_rows] == [1.0, 0.0, 1.0]
    assert subset.aggregated_results["median"] == {"median": 1.0}


def test_score_bad_input_is_a_400_naming_the_column_and_function(clients):
    r = clients.http.post(
        "/v1/scoring/score",
        json={
            "input_rows": [
                {"expected_answer": "x", "generated_answer": "x"},
                {"expected_answer": "y"},
            ],
            "scoring_functions": {"basic::equality": None},
        },
    )
    assert r.status_code == 400
    assert error_of(r)["field"] == "input_rows[1].generated_answer"
    assert "'basic::equality'" in error_of(r)["message"]
    r = clients.http.post(
        "/v1/scoring/score",
        json={"input_rows": ROWS, "scoring_functions": {"basic::nope": None}},
    )
    assert r.status_code == 404 and "'basic::nope'" in error_of(r)["message"]
    r = clients.http.post(
        "/v1/scoring/score",
        json={
            "input_rows": ROWS,
            "scoring_functions": {
                "basic::equality": {"type": "regex_parser", "parsing_regexes": []}
            },
        },
    )
    assert r.status_code == 400 and "'basic'" in error_of(r)["message"]
    r = clients.http.post(
        "/v1/scoring/score",
        json={
            "input_rows": ROWS,
            "scoring_functions": {
                "basic::equality": {"type": "basic", "aggregation_functions": ["mode"]}
            },
        },
    )
    assert r.status_code == 400 and "aggregation_functions" in error_of(r)["field"]


def test_too_many_rows_is_a_400(model, tmp_path):
    config = stack_config(model, tmp_path)
    config["providers"]["scoring"][0]["config"] = {"max_rows_per_request": 2}
    c = Clients(config)
    try:
        r = c.http.post(
            "/v1/scoring/score",
            json={"input_rows": ROWS, "scoring_functions": {"basic::equality": None}},
        )
        assert r.status_code == 400 and "at most 2" in error_of(r)["message"]
    finally:
        c.close()


def test_score_batch_reads_the_dataset_and_saves_the_results(clients):
    clients.llama.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": ROWS}, dataset_id="answers"
    )
    response = clients.llama.scoring.score_batch(
        dataset_id="answers",
        scoring_functions={"basic::subset_of": None},
        save_results_dataset=True,
    )
    result = response.results["basic::subset_of"]
    assert result.aggregated_results["accuracy"]["num_correct"] == 2.0
    assert response.dataset_id and response.dataset_id.startswith("answers-scores-")
    saved = clients.llama.datasets.iterrows(response.dataset_id).data
    assert [row["basic::subset_of"]["score"] for row in saved] == [1.0, 0.0, 1.0]
    assert saved[1]["generated_answer"] == "Lyon"
    meta = clients.llama.datasets.retrieve(response.dataset_id).metadata
    assert meta["scored_dataset_id"] == "answers"
    # Without saving, no dataset is made.
    plain = clients.llama.scoring.score_batch(
        dataset_id="answers",
        scoring_functions={"basic::equality": None},
        save_results_dataset=False,
    )
    assert plain.dataset_id is None
    r = clients.http.post(
        "/v1/scoring/score-batch",
        json={
            "dataset_id": "ghost",
            "scoring_functions": {"basic::equality": None},
            "save_results_dataset": False,
        },
    )
    assert r.status_code == 404 and "'ghost'" in error_of(r)["message"]


# ---- llm-as-judge ----------------------------------------------------------------------


def test_simpleqa_judge_grades_each_row_through_the_inference_api(clients, model):
    grades = {"4": "A", "Lyon": "B", "It is blue.": "C"}

    def grade(body: dict[str, Any]) -> Reply:
        prompt = body["messages"][0]["content"]
        answer = prompt.split("Predicted answer: ")[1].split("\n")[0]
        return Reply(grades[answer])

    model.play(grade, grade, grade)
    result = clients.llama.scoring.score(
        input_rows=ROWS, scoring_functions={"llm-as-judge::405b-simpleqa": None}
    ).results["llm-as-judge::405b-simpleqa"]
    assert [r["score"] for r in result.score_rows] == ["A", "B", "C"]
    assert [r["judge_feedback"] for r in result.score_rows] == ["A", "B", "C"]
    assert result.aggregated_results == {
        "categorical_count": {"categorical_count": {"A": 1, "B": 1, "C": 1}}
    }
    assert len(model.chats) == 3
    body = model.chats[0]
    assert body["model"] == "scripted"  # the judge's provider model id
    assert "Gold target: 4" in body["messages"][0]["content"]


def test_base_judge_takes_prompt_and_regexes_from_the_request(clients, model):
    model.play(Reply("Score: 4 of 5"), Reply("Score: 2 of 5"), Reply("no idea"))
    params = {
        "type": "llm_as_judge",
        "judge_model": JUDGE,
        "prompt_template": "Q: {input_query}\nGold: {expected_answer}\nGot: {generated_answer}\nRate 1-5.",
        "judge_score_regexes": [r"Score: (\d)"],
        "aggregation_functions": ["average", "categorical_count"],
    }
    result = clients.llama.scoring.score(
        input_rows=ROWS, scoring_functions={"llm-as-judge::base": params}
    ).results["llm-as-judge::base"]
    assert [r["score"] for r in result.score_rows] == ["4", "2", None]
    assert result.aggregated_results["average"] == {"average": 3.0}
    prompts = sorted(c["messages"][0]["content"] for c in model.chats)
    assert "Q: 2+2?\nGold: 4\nGot: 4\nRate 1-5." in prompts
    # Without params, the base function has no prompt: a 400 naming it.
    r = clients.http.post(
        "/v1/scoring/score",
        json={"input_rows": ROWS, "scoring_functions": {"llm-as-judge::base": None}},
    )
    assert r.status_code == 400 and error_of(r)["field"].endswith("prompt_template")


def test_a_judge_that_is_not_an_llm_or_unknown_is_a_400(clients):
    for judge, why in (("embedder", "not an llm"), ("ghost", "not registered")):
        r = clients.http.post(
            "/v1/scoring/score",
            json={
                "input_rows": ROWS,
                "scoring_functions": {
                    "llm-as-judge::405b-simpleqa": {
                        "type": "llm_as_judge",
                        "judge_model": judge,
                        "prompt_template": "{generated_answer}",
                        "judge_score_regexes": ["(A|B|C)"],
                    }
                },
            },
        )
        assert r.status_code == 400 and why in error_of(r)["message"], judge
        assert error_of(r)["field"].endswith("judge_model")


def test_judge_rows_lacking_the_query_are_a_400(clients):
    r = clients.http.post(
        "/v1/scoring/score",
        json={
            "input_rows": [{"expected_answer": "a", "generated_answer": "a"}],
            "scoring_functions": {"llm-as-judge::405b-simpleqa": None},
        },
    )
    assert r.status_code == 400 and error_of(r)["field"] == "input_rows[0].input_query"


def test_a_registered_judge_function_scores_with_its_own_params(clients, model):
    clients.llama.scoring_functions.register(
        scoring_fn_id="yes-no-judge",
        description="yes or no",
        return_type={"type": "string"},
        provider_id="llm-as-judge",
        params={
            "type": "llm_as_judge",
            "judge_model": JUDGE,
            "prompt_template": "Is '{generated_answer}' right for '{input_query}'?",
            "judge_score_regexes": ["(yes|no)"],
            "aggregation_functions": ["categorical_count"],
        },
    )
    model.play(Reply("yes"), Reply("no"), Reply("yes"))
    result = clients.llama.scoring.score(
        input_rows=ROWS, scoring_functions={"yes-no-judge": None}
    ).results["yes-no-judge"]
    assert sorted(str(r["score"]) for r in result.score_rows) == ["no", "yes", "yes"]


# ---- the run config --------------------------------------------------------------------


def test_config_scoring_fns_are_registered_and_validated(model, tmp_path):
    fn = {
        "scoring_fn_id": "strict-equality",
        "description": "equality, averaged",
        "provider_id": "basic",
        "provider_scoring_fn_id": "equality",
        "params": {"type": "basic", "aggregation_functions": ["average"]},
    }
    c = Clients(stack_config(model, tmp_path, scoring_fns=[fn]))
    try:
        result = c.llama.scoring.score(
            input_rows=ROWS, scoring_functions={"strict-equality": None}
        ).results["strict-equality"]
        assert result.aggregated_results == {"average": {"average": 1 / 3}}
    finally:
        c.close()
    bad = stack_config(model, tmp_path, scoring_fns=[{**fn, "params": {"type": "nope"}}])
    with pytest.raises(ConfigError, match=r"scoring_fns\[0\]\.params"):
        parse_config(bad)
    unserved = stack_config(model, tmp_path, scoring_fns=[fn])
    unserved["apis"] = ["inference", "datasetio"]
    with pytest.raises(ConfigError, match="needs the scoring API"):
        parse_config(unserved)
