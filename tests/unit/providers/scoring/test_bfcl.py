"""`basic::bfcl`: decoding calls and checking them against the ground truth."""

from __future__ import annotations

import json

import pytest

from stackray.api.scoring import BasicScoringFnParams
from stackray.providers.inline.scoring.basic.bfcl import check_row, decode_calls, score_bfcl

WEATHER = {
    "name": "get_weather",
    "parameters": {
        "type": "dict",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string"},
        },
        "required": ["city"],
    },
}
TRUTH = [
    {"get_weather": {"city": ["Paris", "Paris, France"], "days": [3], "unit": ["", "celsius"]}}
]


def row(generated: str, id: str = "simple_3", truth=TRUTH, docs=(WEATHER,)):
    return {
        "id": id,
        "language": "Python",
        "generated_answer": generated,
        "function": json.dumps(list(docs)),
        "ground_truth": json.dumps(truth),
    }


def test_decoding_calls():
    assert decode_calls('[get_weather(city="Paris", days=3)]') == [
        {"get_weather": {"city": "Paris", "days": 3}}
    ]
    assert decode_calls("math.sqrt(x=4), f(a=[1, 2])") == [
        {"math.sqrt": {"x": 4}},
        {"f": {"a": [1, 2]}},
    ]
    with pytest.raises(SyntaxError):
        decode_calls("get_weather(city=")


@pytest.mark.parametrize(
    ("generated", "score", "why"),
    [
        ('[get_weather(city="Paris", days=3)]', 1.0, ""),
        ('[get_weather(city="paris, france", days=3, unit="celsius")]', 1.0, ""),
        ('[get_weather(city="Lyon", days=3)]', 0.0, "is 'Lyon'"),
        ('[get_weather(city="Paris")]', 0.0, "missing parameter 'days'"),
        ("[get_weather(days=3)]", 0.0, "missing required parameter 'city'"),
        ('[get_weather(city="Paris", days="3")]', 0.0, "of type integer"),
        ('[get_weather(city="Paris", days=3, wind=True)]', 0.0, "unexpected parameter 'wind'"),
        ('[get_forecast(city="Paris", days=3)]', 0.0, "called get_forecast"),
        ("I cannot call tools.", 0.0, "invalid syntax"),
    ],
)
def test_simple_calls(generated, score, why):
    assert score_bfcl(row(generated), BasicScoringFnParams()) == {"score": score}
    if why:
        assert why in check_row(row(generated))["error"]


def test_parallel_calls_match_in_any_order():
    truth = [
        {"get_weather": {"city": ["Paris"], "days": [1], "unit": [""]}},
        {"get_weather": {"city": ["Rome"], "days": [2], "unit": [""]}},
    ]
    both = '[get_weather(city="Rome", days=2), get_weather(city="Paris", days=1)]'
    assert score_bfcl(row(both, "parallel_7", truth), BasicScoringFnParams()) == {"score": 1.0}
    one = '[get_weather(city="Rome", days=2)]'
    assert score_bfcl(row(one, "parallel_7", truth), BasicScoringFnParams()) == {"score": 0.0}


def test_irrelevance_rows_score_when_nothing_is_called():
    assert score_bfcl(
        row("I can't help with that.", "irrelevance_4", []), BasicScoringFnParams()
    ) == {"score": 1.0}
    called = '[get_weather(city="Paris", days=3)]'
    assert score_bfcl(row(called, "irrelevance_4", []), BasicScoringFnParams()) == {"score": 0.0}
    assert score_bfcl(row(called, "live_relevance_2", []), BasicScoringFnParams()) == {"score": 1.0}
