"""`inline::braintrust` through the gateway, with the real `llama-stack-client` over HTTP:
each function's score on known inputs, its judge calls answered by a scripted model
behind `remote::vllm` (the tool calls autoevals' scorers ask for) and its embeddings by
the external echo provider; bad input and unreadable judge answers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from autoevals.string import EmbeddingSimilarity
from llama_stack_client import LlamaStackClient

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.remote_servers import Failure, FakeService, text_of
from tests.unit.support.scripted_model import Reply, ScriptedModel

JUDGE, EMBED = "judge", "embedder"
FUNCTIONS = [
    "factuality",
    "answer-correctness",
    "answer-relevancy",
    "answer-similarity",
    "faithfulness",
    "context-entity-recall",
    "context-precision",
    "context-recall",
    "context-relevancy",
]
QUERY = "What is the capital of France?"
CONTEXT = "Paris is the capital of France. Lyon is a large city."
ROW = {
    "input_query": QUERY,
    "expected_answer": "Paris, in France",
    "generated_answer": "Lyon is the capital",
    "context": CONTEXT,
}


def stack_config(model: ScriptedModel, data_dir: Path) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "braintrust-test",
        "apis": ["inference", "scoring"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{model.url}/v1", "retry_backoff_s": 0.01},
                },
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"},
            ],
            "scoring": [
                {
                    "provider_id": "braintrust",
                    "provider_type": "inline::braintrust",
                    "config": {
                        "openai_api_key": "",
                        "judge_model": JUDGE,
                        "embedding_model": EMBED,
                        "max_concurrency": 2,
                    },
                },
            ],
        },
        "models": [
            {"model_id": JUDGE, "provider_id": "vllm", "provider_model_id": "scripted"},
            {"model_id": EMBED, "provider_id": "echo", "model_type": "embedding"},
            {"model_id": "echo-llm", "provider_id": "echo", "model_type": "llm"},
        ],
        "storage": {"data_dir": str(data_dir)},
    }


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    m = ScriptedModel().start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def stack(model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = parse_config(stack_config(model, tmp_path_factory.mktemp("bt")))
    routers = asyncio.run(build_local_stack(config))
    server = FakeService(lambda _: create_gateway_app(config, routers)).start()
    yield server.url
    server.stop()


@pytest.fixture()
def llama(stack: str, model: ScriptedModel) -> LlamaStackClient:
    model.reset()
    return LlamaStackClient(base_url=stack, max_retries=0, timeout=30)


@pytest.fixture()
def http(stack: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack, timeout=30) as c:
        yield c


# ---- what the scorers are told -----------------------------------------------------------


def tool_of(body: dict[str, Any]) -> str:
    choice = body["tool_choice"]
    assert choice["type"] == "function", body  # autoevals forces its tool
    return str(choice["function"]["name"])


def prompt_of(body: dict[str, Any]) -> str:
    return text_of(body["messages"][-1]["content"])


def entities_of(text: str) -> list[str]:
    return [w.strip(".,") for w in text.split() if w[:1].isupper()]


def judge(choice: str = "C", context: str = CONTEXT) -> Any:
    """The judge: answers each scorer's forced tool call from what its prompt holds."""

    def reply(body: dict[str, Any]) -> Reply:
        name, prompt = tool_of(body), prompt_of(body)
        schema = body["tools"][0]["function"]["parameters"]
        if name == "select_choice":
            args: dict[str, Any] = {"reasons": "compared", "choice": choice}
        elif name == "classify_statements":
            args = {"TP": ["Paris is the capital"], "FP": ["Lyon"], "FN": ["in France"]}
        elif name == "generate_question":
            args = {"question": QUERY, "noncommittal": 0}
        elif name == "extract_statements" and "items" in schema["properties"]["statements"]:
            if schema["properties"]["statements"]["items"].get("type") == "string":
                args = {"statements": ["Lyon is the capital", "It is in France"]}
            else:  # context-recall's attribution
                args = {
                    "statements": [
                        {"statement": "Paris", "attributed": 1, "reason": "in context"},
                        {"statement": "France", "attributed": 1, "reason": "in context"},
                        {"statement": "Seine", "attributed": 0, "reason": "absent"},
                    ]
                }
        elif name == "judge_statements":
            args = {
                "faithfulness": [
                    {"statement": "Lyon is the capital", "verdict": 0, "reason": "no"},
                    {"statement": "It is in France", "verdict": 1, "reason": "yes"},
                ]
            }
        elif name == "verify":
            args = {"reason": "the context names Paris", "verdict": 1}
        elif name == "extract_sentences":
            args = {"sentences": [{"sentence": "Paris is the capital of France.", "reasons": []}]}
        elif name == "extract_entities":
            # Asked twice: for the expected answer's entities and for the context's.
            source = ROW["expected_answer"] if ROW["expected_answer"] in prompt else context
            assert source in prompt
            args = {"entities": entities_of(source)}
        else:
            raise AssertionError(f"unexpected tool {name}")
        return Reply(tool_calls=[("select_choice" if name == "select_choice" else name, args)])

    return reply


def play_judge(
    model: ScriptedModel, times: int = 12, choice: str = "C", context: str = CONTEXT
) -> None:
    model.play(*[judge(choice, context)] * times)


# ---- the echo provider's embeddings, computed here ---------------------------------------


def echo_vector(text: str, dimension: int = 8) -> list[float]:
    return [b / 255.0 for b in hashlib.sha256(text.encode()).digest()[:dimension]]


def similarity(a: str, b: str) -> float:
    va, vb = echo_vector(a), echo_vector(b)
    dot = sum(x * y for x, y in zip(va, vb, strict=True))
    cos = min(dot / (sum(x * x for x in va) ** 0.5 * sum(y * y for y in vb) ** 0.5), 1)
    return max((cos - 0.7) / 0.3, 0)  # autoevals' scaling (expected_min 0.7)


def score(llama: LlamaStackClient, name: str, rows: list[dict[str, Any]], params=None):
    fid = f"braintrust::{name}"
    return llama.scoring.score(input_rows=rows, scoring_functions={fid: params}).results[fid]


# ---- the registry ------------------------------------------------------------------------


def test_the_nine_functions_are_listed_with_llama_stacks_ids(llama):
    listed = {
        f.identifier: f for f in llama.scoring_functions.list() if f.provider_id == "braintrust"
    }
    assert set(listed) == {f"braintrust::{n}" for n in FUNCTIONS}
    fn = listed["braintrust::answer-correctness"]
    assert fn.provider_resource_id == "answer-correctness"
    assert fn.return_type.type == "number"
    assert fn.params.type == "basic" and fn.params.aggregation_functions == ["average"]


# ---- each function on known inputs -------------------------------------------------------


@pytest.mark.parametrize(("choice", "expected"), [("C", 1.0), ("A", 0.4), ("B", 0.6), ("D", 0.0)])
def test_factuality_scores_the_judges_choice(llama, model, choice, expected):
    play_judge(model, choice=choice)
    result = score(llama, "factuality", [ROW])
    row = result.score_rows[0]
    assert row["score"] == pytest.approx(expected)
    assert row["metadata"]["choice"] == choice and row["metadata"]["rationale"] == "compared"
    assert result.aggregated_results["average"]["average"] == pytest.approx(expected)
    (body,) = model.chats
    assert body["model"] == "scripted"  # the judge's provider model id, through the stack
    assert ROW["generated_answer"] in prompt_of(body) and QUERY in prompt_of(body)
    assert body["tools"][0]["function"]["parameters"]["properties"]["choice"]["enum"] == [
        "A",
        "B",
        "C",
        "D",
        "E",
    ]


def test_answer_correctness_weighs_statement_f1_with_embedding_similarity(llama, model):
    play_judge(model)
    row = score(llama, "answer-correctness", [ROW]).score_rows[0]
    f1 = 1 / (1 + 0.5 * (1 + 1))  # one TP, one FP, one FN
    sim = similarity(ROW["generated_answer"], ROW["expected_answer"])
    assert row["metadata"]["factuality_score"] == pytest.approx(f1)
    assert row["metadata"]["answer_similarity_score"] == pytest.approx(sim)
    assert row["score"] == pytest.approx(0.75 * f1 + 0.25 * sim)


def test_answer_relevancy_compares_generated_questions_with_the_query(llama, model):
    play_judge(model)
    row = score(llama, "answer-relevancy", [ROW]).score_rows[0]
    assert row["score"] == pytest.approx(1.0)  # the same question thrice: identical embeddings
    assert len(row["metadata"]["questions"]) == 3 and len(model.chats) == 3
    assert all(body["temperature"] == 0.5 for body in model.chats)


def test_answer_similarity_is_the_scaled_cosine_of_the_embeddings(llama, model):
    same = {**ROW, "generated_answer": ROW["expected_answer"]}
    result = score(llama, "answer-similarity", [ROW, same])
    sim = similarity(ROW["generated_answer"], ROW["expected_answer"])
    assert [r["score"] for r in result.score_rows] == [pytest.approx(sim), pytest.approx(1.0)]
    assert result.aggregated_results["average"]["average"] == pytest.approx((sim + 1) / 2)
    assert model.chats == []  # embeddings only


def test_faithfulness_is_the_share_of_supported_statements(llama, model):
    play_judge(model)
    row = score(llama, "faithfulness", [ROW]).score_rows[0]
    assert row["score"] == pytest.approx(0.5)
    assert row["metadata"]["statements"] == ["Lyon is the capital", "It is in France"]
    assert [tool_of(b) for b in model.chats] == ["extract_statements", "judge_statements"]


def test_context_entity_recall_matches_entities_by_embedding(llama, model):
    play_judge(model)
    row = score(llama, "context-entity-recall", [ROW]).score_rows[0]
    expected, found = entities_of(ROW["expected_answer"]), entities_of(CONTEXT)
    assert row["metadata"] == {"context_entities": found, "expected_entities": expected}
    # The best one-to-one matching of expected to context entities, over the expected ones.
    assert expected == ["Paris", "France"] and found == ["Paris", "France", "Lyon"]
    assert row["score"] == pytest.approx(1.0)


def test_context_entity_recall_partial_match(llama, model):
    partial = {**ROW, "context": "Paris and Lyon are cities."}
    play_judge(model, context=partial["context"])
    row = score(llama, "context-entity-recall", [partial]).score_rows[0]
    found = entities_of(partial["context"])
    assert found == ["Paris", "Lyon"]
    best = max(
        similarity("Paris", "Paris") + similarity("Lyon", "France"),
        similarity("Paris", "France") + similarity("Lyon", "Paris"),
    )
    assert row["score"] == pytest.approx(min(best / 2, 1))
    assert row["score"] < 1


def test_context_precision_is_the_judges_verdict(llama, model):
    play_judge(model)
    row = score(llama, "context-precision", [ROW]).score_rows[0]
    assert row["score"] == 1.0 and row["metadata"]["precision"]["verdict"] == 1
    assert CONTEXT in prompt_of(model.chats[0])


def test_context_recall_is_the_share_of_attributed_statements(llama, model):
    play_judge(model)
    row = score(llama, "context-recall", [ROW]).score_rows[0]
    assert row["score"] == pytest.approx(2 / 3)


def test_context_relevancy_is_the_share_of_relevant_context(llama, model):
    play_judge(model)
    listed = {**ROW, "context": ["Paris is the capital of France.", "Lyon is a large city."]}
    result = score(llama, "context-relevancy", [ROW, listed])
    # A list of passages is one context, joined by newlines.
    assert [r["score"] for r in result.score_rows] == [
        pytest.approx(len("Paris is the capital of France.") / len(CONTEXT)),
        pytest.approx(len("Paris is the capital of France.") / len(CONTEXT)),
    ]


def test_params_name_another_judge_and_other_aggregations(llama, model):
    play_judge(model, choice="A")
    params = {
        "type": "llm_as_judge",
        "judge_model": JUDGE,
        "aggregation_functions": ["median", "categorical_count"],
    }
    result = score(llama, "factuality", [ROW], params)
    assert result.aggregated_results == {
        "median": {"median": 0.4},
        "categorical_count": {"categorical_count": {"0.4": 1}},
    }


# ---- rows the judge cannot score, bad input ----------------------------------------------


def test_a_judge_answer_without_the_tool_call_is_that_rows_error(llama, model):
    model.play(Reply("I think the answer is C."), judge("C"))
    result = score(llama, "factuality", [ROW, ROW])
    rows = sorted(result.score_rows, key=lambda r: r["score"] is None)
    assert rows[0]["score"] == 1.0
    assert rows[1]["score"] is None and "No tool call" in rows[1]["error"]
    assert result.aggregated_results["average"]["average"] == 1.0


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


def test_a_missing_column_is_a_400_naming_it_and_the_function(http, model):
    model.reset()
    for name, column in [
        ("faithfulness", "context"),
        ("answer-similarity", "expected_answer"),
        ("context-relevancy", "input_query"),
    ]:
        row = {k: v for k, v in ROW.items() if k != column}
        r = http.post(
            "/v1/scoring/score",
            json={"input_rows": [row], "scoring_functions": {f"braintrust::{name}": None}},
        )
        error = error_of(r)
        assert error["field"] == f"input_rows[0].{column}"
        assert repr(column) in error["message"] and f"braintrust::{name}" in error["message"]
    assert model.chats == []


def test_bad_values_models_and_params_are_400s(http, model):
    model.reset()
    register = {
        "scoring_fn_id": "my-judged",
        "description": "factuality by the echo model",
        "return_type": {"type": "number"},
        "provider_id": "braintrust",
        "provider_scoring_fn_id": "factuality",
        "params": {"type": "llm_as_judge", "judge_model": "ghost"},
    }
    assert http.post("/v1/scoring-functions", json=register).status_code == 200
    cases = [
        ({"braintrust::faithfulness": None}, {**ROW, "context": 3}, "input_rows[0].context"),
        (
            {"braintrust::factuality": None},
            {**ROW, "generated_answer": None},
            "input_rows[0].generated_answer",
        ),
        (
            {"braintrust::factuality": {"type": "llm_as_judge", "judge_model": EMBED}},
            ROW,
            "scoring_functions.braintrust::factuality.judge_model",
        ),
        (
            {"braintrust::factuality": {"type": "llm_as_judge", "judge_model": "ghost"}},
            ROW,
            "scoring_functions.braintrust::factuality.judge_model",
        ),
        (
            {"braintrust::factuality": {"type": "regex_parser", "parsing_regexes": ["x"]}},
            ROW,
            "scoring_functions.braintrust::factuality.type",
        ),
        (
            {
                "braintrust::factuality": {
                    "type": "llm_as_judge",
                    "judge_model": JUDGE,
                    "prompt_template": "{generated_answer}",
                }
            },
            ROW,
            "scoring_functions.braintrust::factuality.prompt_template",
        ),
        ({"my-judged": None}, ROW, "scoring_functions.my-judged.judge_model"),
    ]
    for functions, row, field in cases:
        r = http.post(
            "/v1/scoring/score", json={"input_rows": [row], "scoring_functions": functions}
        )
        error = error_of(r)
        if field is not None:
            assert error["field"] == field, (functions, error)
    assert model.chats == []


def test_the_judges_requests_carry_the_scorers_schema(llama, model):
    play_judge(model)
    score(llama, "context-recall", [ROW])
    (body,) = model.chats
    schema = body["tools"][0]["function"]["parameters"]
    item = schema["properties"]["statements"]["items"]
    assert item["required"] == ["statement", "attributed", "reason"]
    assert body["max_tokens"] == 1024  # the provider's max_tokens
    assert json.loads(json.dumps(body["messages"]))[0]["role"] == "user"


def test_without_a_judge_or_embedding_model_in_the_config_the_functions_are_400s(tmp_path):
    """As Llama Stack's templates configure the provider: only `openai_api_key`."""
    from stackray.api.datatypes import Api
    from stackray.api.errors import BadRequestError
    from stackray.providers.inline.scoring.braintrust.config import BraintrustScoringConfig
    from stackray.providers.inline.scoring.braintrust.impl import BraintrustScoringProvider
    from stackray.runtime.resolver import provider_context

    stack = parse_config({"version": 2, "image_name": "t", "apis": ["scoring"]})
    config = BraintrustScoringConfig.model_validate({"openai_api_key": "unused"})
    provider = BraintrustScoringProvider(
        config, {Api.inference: object()}, provider_context(stack, "braintrust")
    )
    fns = {f.identifier: f for f in provider.builtin_functions()}
    for name, field in [
        ("factuality", "scoring_functions.braintrust::factuality.judge_model"),
        ("answer-similarity", "embedding_model"),
    ]:
        with pytest.raises(BadRequestError) as e:
            asyncio.run(provider.score(fns[f"braintrust::{name}"], None, [ROW]))
        assert e.value.field == field and f"braintrust::{name}" in str(e.value)


def test_a_failing_judge_call_fails_the_request_rather_than_a_row(http, model):
    model.reset()
    model.fail(Failure(status=400, body={"error": {"message": "prompt too long for judge"}}))
    r = http.post(
        "/v1/scoring/score",
        json={"input_rows": [ROW], "scoring_functions": {"braintrust::factuality": None}},
    )
    assert r.status_code == 400, r.text
    assert "prompt too long for judge" in r.text


def test_the_embedding_cache_is_dropped_after_each_request(llama, model):
    score(llama, "answer-similarity", [ROW])
    assert not EmbeddingSimilarity._CACHE  # a long-running stack keeps no scored texts


def test_answer_similarity_with_the_local_distributions_embedding_model(tmp_path):
    """all-MiniLM-L6-v2 (the `local` distribution's embedding model) in this process."""
    config = parse_config(
        {
            "version": 2,
            "image_name": "braintrust-minilm",
            "apis": ["inference", "scoring"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "sentence-transformers",
                        "provider_type": "inline::sentence-transformers",
                        "config": {"num_threads": 2},
                    }
                ],
                "scoring": [
                    {
                        "provider_id": "braintrust",
                        "provider_type": "inline::braintrust",
                        "config": {"embedding_model": "all-MiniLM-L6-v2"},
                    }
                ],
            },
            "models": [
                {
                    "model_id": "all-MiniLM-L6-v2",
                    "provider_id": "sentence-transformers",
                    "provider_model_id": "sentence-transformers/all-MiniLM-L6-v2",
                    "model_type": "embedding",
                }
            ],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    routers = asyncio.run(build_local_stack(config))
    server = FakeService(lambda _: create_gateway_app(config, routers)).start()
    try:
        llama = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
        rows = [
            {"expected_answer": "Paris is the capital of France.", "generated_answer": a}
            for a in (
                "Paris is the capital of France.",
                "The capital of France is Paris.",
                "Bananas are rich in potassium.",
            )
        ]
        scores = [r["score"] for r in score(llama, "answer-similarity", rows).score_rows]
        assert scores[0] == pytest.approx(1.0, abs=1e-6)
        assert 0.5 < scores[1] < 1.0  # a paraphrase
        assert scores[2] == 0.0  # unrelated: below autoevals' 0.7 cosine floor
    finally:
        server.stop()
