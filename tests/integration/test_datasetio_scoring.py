"""Datasets and scoring on the shared Serve stack, with the real `llama-stack-client`:
gateway -> datasetio deployment for rows, gateway -> scoring deployment -> datasetio (and
the inference router inside the scoring replica, for the judge)."""

from __future__ import annotations

import base64

import llama_stack_client
import pytest

CSV = "question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n"

ANSWERS = [
    {"input_query": "2+2?", "expected_answer": "4", "generated_answer": "It is 4."},
    {"input_query": "France?", "expected_answer": "Paris", "generated_answer": "Lyon"},
]


def test_datasets_rows_and_appends(stack) -> None:
    client = stack.client()
    uri = "data:text/csv;base64," + base64.b64encode(CSV.encode()).decode()
    ds = client.datasets.register(
        purpose="eval/question-answer",
        source={"type": "uri", "uri": uri},
        dataset_id="integration-qa",
    )
    assert ds.provider_id == "localfs"
    assert "integration-qa" in {d.identifier for d in client.datasets.list()}
    page = client.datasets.iterrows("integration-qa", start_index=0, limit=1)
    assert page.data == [{"question": "What is 2+2?", "answer": "4"}] and page.has_more
    with stack.http() as http:
        r = http.post(
            "/v1/datasetio/append-rows/integration-qa",
            json={"rows": [{"question": "Sky?", "answer": "blue"}]},
        )
        assert r.status_code == 200, r.text
        bad = http.post(
            "/v1/datasetio/append-rows/integration-qa", json={"rows": [{"question": "x"}]}
        )
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "rows[0].answer"
    rows = client.datasets.iterrows("integration-qa").data
    assert [r["answer"] for r in rows] == ["4", "Paris", "blue"]
    client.datasets.unregister("integration-qa")
    with pytest.raises(llama_stack_client.NotFoundError):
        client.datasets.retrieve("integration-qa")


def test_scoring_functions_score_and_score_batch(stack) -> None:
    client = stack.client()
    ids = {f.identifier for f in client.scoring_functions.list()}
    assert {"basic::subset_of", "basic::ifeval", "llm-as-judge::405b-simpleqa"} <= ids
    result = client.scoring.score(
        input_rows=ANSWERS, scoring_functions={"basic::subset_of": None}
    ).results["basic::subset_of"]
    assert [r["score"] for r in result.score_rows] == [1.0, 0.0]
    assert result.aggregated_results["accuracy"]["accuracy"] == 0.5

    client.datasets.register(
        purpose="eval/question-answer",
        source={"type": "rows", "rows": ANSWERS},
        dataset_id="integration-answers",
    )
    batch = client.scoring.score_batch(
        dataset_id="integration-answers",
        scoring_functions={"basic::equality": None, "basic::subset_of": None},
        save_results_dataset=True,
    )
    assert batch.results["basic::equality"].aggregated_results["accuracy"]["num_correct"] == 0
    assert batch.dataset_id is not None
    saved = client.datasets.iterrows(batch.dataset_id).data
    assert [r["basic::subset_of"]["score"] for r in saved] == [1.0, 0.0]


def test_llm_as_judge_calls_a_served_model(stack) -> None:
    client = stack.client()
    # The echo model answers "echo: <prompt>", so the regex finds the score the prompt
    # carries: the judge's request went through the scoring replica's inference router.
    params = {
        "type": "llm_as_judge",
        "judge_model": "echo-model",
        "prompt_template": "Score: 5 if '{generated_answer}' answers '{input_query}'",
        "judge_score_regexes": [r"Score: (\d)"],
        "aggregation_functions": ["average"],
    }
    result = client.scoring.score(
        input_rows=ANSWERS, scoring_functions={"llm-as-judge::base": params}
    ).results["llm-as-judge::base"]
    assert [r["score"] for r in result.score_rows] == ["5", "5"]
    assert result.score_rows[0]["judge_feedback"].startswith("echo: Score: 5 if 'It is 4.'")
    assert result.aggregated_results == {"average": {"average": 5.0}}
    with stack.http() as http:
        r = http.post(
            "/v1/scoring/score",
            json={
                "input_rows": ANSWERS,
                "scoring_functions": {
                    "llm-as-judge::base": {**params, "judge_model": "all-MiniLM-L6-v2"}
                },
            },
        )
        assert r.status_code == 400 and "not an llm" in r.json()["error"]["message"]
