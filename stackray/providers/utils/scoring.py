"""What the scoring providers share: the aggregation functions, the required-column check
and the per-request row limit.

Aggregated results are keyed by the aggregation function's name, each a mapping of its
metrics, as in Llama Stack 0.2.12: ``{"accuracy": {"accuracy": 0.5, "num_correct": 1.0,
"num_total": 2}}``. Scores that are not numbers (a judge's letter grade) count for
`categorical_count` only; the numeric aggregations skip them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stackray.api.errors import BadRequestError
from stackray.api.scoring import AggregationFunctionType


class ScoringProviderConfig(BaseModel):
    """Settings every scoring provider has."""

    model_config = ConfigDict(extra="forbid")

    max_rows_per_request: int = Field(
        default=10_000, ge=1, description="Most rows one score request may carry."
    )


def number(value: Any) -> float | None:
    """A score as a number: numbers and numeric strings; None for anything else."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _numeric_scores(rows: list[dict[str, Any]]) -> list[float]:
    return [n for n in (number(r.get("score")) for r in rows) if n is not None]


def accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    correct = sum(_numeric_scores(rows))
    return {
        "accuracy": correct / len(rows) if rows else None,
        "num_correct": correct,
        "num_total": len(rows),
    }


def average(rows: list[dict[str, Any]]) -> dict[str, Any]:
    scores = _numeric_scores(rows)
    return {"average": sum(scores) / len(scores) if scores else None}


def weighted_average(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = [
        (s, w)
        for s, w in ((number(r.get("score")), number(r.get("weight"))) for r in rows)
        if s is not None and w is not None
    ]
    total = sum(w for _, w in pairs)
    return {"weighted_average": sum(s * w for s, w in pairs) / total if total else None}


def median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    scores = _numeric_scores(rows)
    return {"median": statistics.median(scores) if scores else None}


def categorical_count(rows: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in rows:
        key = str(r.get("score"))
        counts[key] = counts.get(key, 0) + 1
    return {"categorical_count": dict(sorted(counts.items()))}


AGGREGATIONS: dict[AggregationFunctionType, Callable[[list[dict[str, Any]]], dict[str, Any]]] = {
    AggregationFunctionType.accuracy: accuracy,
    AggregationFunctionType.average: average,
    AggregationFunctionType.weighted_average: weighted_average,
    AggregationFunctionType.median: median,
    AggregationFunctionType.categorical_count: categorical_count,
}


def aggregate(
    score_rows: list[dict[str, Any]], functions: Iterable[AggregationFunctionType]
) -> dict[str, Any]:
    """Each aggregation function's metrics over `score_rows`, keyed by its name."""
    return {AggregationFunctionType(f).value: AGGREGATIONS[f](score_rows) for f in functions}


def check_rows(rows: list[Any], columns: Iterable[str], fn_id: str, max_rows: int) -> None:
    """400 when there are more rows than `max_rows`, or a row lacks one of `columns`
    (naming the row, the column and the function)."""
    if len(rows) > max_rows:
        raise BadRequestError(
            f"{len(rows)} rows in one request; this provider scores at most {max_rows} "
            "(max_rows_per_request)",
            field="input_rows",
        )
    wanted = tuple(columns)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadRequestError(f"row {i} is not an object", field=f"input_rows[{i}]")
        for column in wanted:
            if column not in row:
                raise BadRequestError(
                    f"row {i} has no column {column!r}, which scoring function {fn_id!r} "
                    f"needs (it reads {', '.join(wanted)})",
                    field=f"input_rows[{i}].{column}",
                )
