"""The aggregation functions and the row checks shared by the scoring providers."""

from __future__ import annotations

import pytest

from stackray.api.errors import BadRequestError
from stackray.api.scoring import AggregationFunctionType as Agg
from stackray.providers.utils.scoring import aggregate, check_rows


def test_aggregations_on_known_scores():
    rows = [
        {"score": 1.0, "weight": 3.0},
        {"score": 0.0, "weight": 1.0},
        {"score": 0.5, "weight": 0.0},
        {"score": None, "weight": 2.0},
    ]
    assert aggregate(rows, [Agg.accuracy]) == {
        "accuracy": {"accuracy": 1.5 / 4, "num_correct": 1.5, "num_total": 4}
    }
    assert aggregate(rows, [Agg.average]) == {"average": {"average": 0.5}}
    assert aggregate(rows, [Agg.weighted_average]) == {
        "weighted_average": {"weighted_average": 3.0 / 4.0}
    }
    assert aggregate(rows, [Agg.median]) == {"median": {"median": 0.5}}
    assert aggregate(rows, [Agg.categorical_count]) == {
        "categorical_count": {"categorical_count": {"0.0": 1, "0.5": 1, "1.0": 1, "None": 1}}
    }


def test_letter_grades_count_and_numeric_strings_average():
    grades = [{"score": "A"}, {"score": "B"}, {"score": "A"}]
    assert aggregate(grades, [Agg.categorical_count, Agg.average]) == {
        "categorical_count": {"categorical_count": {"A": 2, "B": 1}},
        "average": {"average": None},
    }
    assert aggregate([{"score": "4"}, {"score": "2"}], [Agg.average]) == {
        "average": {"average": 3.0}
    }


def test_empty_rows_aggregate_to_none_not_a_division_error():
    assert aggregate([], [Agg.accuracy, Agg.median]) == {
        "accuracy": {"accuracy": None, "num_correct": 0, "num_total": 0},
        "median": {"median": None},
    }


def test_row_checks_name_the_row_column_and_function():
    check_rows([{"a": 1, "b": 2}], ("a", "b"), "fn", 10)
    with pytest.raises(
        BadRequestError, match="row 1 has no column 'b', which scoring function 'fn'"
    ) as info:
        check_rows([{"a": 1, "b": 2}, {"a": 1}], ("a", "b"), "fn", 10)
    assert info.value.field == "input_rows[1].b"
    with pytest.raises(BadRequestError, match="at most 1"):
        check_rows([{}, {}], (), "fn", 1)
