"""The builtin functions of `inline::basic`: their definitions (ids, default params, as in
Llama Stack 0.2.12), the columns they read, and how each scores one row."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stackray.api.errors import BadRequestError
from stackray.api.scoring import (
    AggregationFunctionType,
    BasicScoringFnParams,
    NumberType,
    RegexParserScoringFnParams,
    ScoringFn,
    ScoringFnParams,
)
from stackray.providers.inline.scoring.basic.docvqa import normalize_answer
from stackray.providers.inline.scoring.basic.math_answer import comparable, first_answer

PROVIDER_ID = "basic"
ANSWERS = ("expected_answer", "generated_answer")

# Where a model states its multiple-choice answer, in the languages of multilingual MMLU.
ANSWER_MARKERS = (
    r"The best answer is ",
    r"Answer\s*:",
    r"Answer\s*:\u200b\u200b\u200b\u200b\u200b\u200b",  # Korean with invisible characters
    r"উত্তর\s*:",
    r"उत्तर\s*:",
    r"উত্তরঃ",
    r"উত্তর\s*:",
    r"Antwort\s*:",
    r"답변\s*:",
    r"정답\s*:",
    r"답\s*:",
    r"答案\s*：",
    r"答案\s*:",
    r"答\s*：",
    r"答\s*:",
    r"答复\s*：",
    r"答曰\s*：",
    r"الإجابة:",
    r"الجواب:",
    r"إجابة:",
    r"الإجابة النهائية:",
    r"الإجابة الصحيحة:",
    r"الإجابة الصحيحة هي:",
    r"الإجابة هي:",
    r"Respuesta\s*:",
    r"Risposta\s*:",
    r"答え\s*:",
    r"答え\s*：",
    r"回答\s*:",
    r"回答\s*：",
    r"解答\s*:",
    r"Jawaban\s*:",
    r"Réponse\s*:",
    r"Resposta\s*:",
    r"Jibu\s*:",
    r"Idahun\s*:",
    r"Ìdáhùn\s*:",
    r"Idáhùn\s*:",
    r"Àmọ̀nà\s*:",
    r"Àdáhùn\s*:",
    r"Ànúgọ\s*:",
    r"Àṣàyàn\s*:",
)
CHOICE_LETTER = r"(?i){}\s*([A-D]|[أ-د]|[অ]|[ব]|[ড]|[ঢ]|[Ａ]|[Ｂ]|[Ｃ]|[Ｄ])"
MULTIPLE_CHOICE_REGEXES = [CHOICE_LETTER.format(marker) for marker in ANSWER_MARKERS]
MATH_ANSWER_REGEXES = [r".*final answer is:?\s*\$\\boxed{(?P<X>.*)}\$"]

RowScorer = Callable[[dict[str, Any], ScoringFnParams], dict[str, Any]]


@dataclass(frozen=True)
class BuiltinFunction:
    """A builtin scoring function: its definition, the columns it reads, its row scorer."""

    definition: ScoringFn
    columns: tuple[str, ...]
    score_row: RowScorer
    params_type: type[BasicScoringFnParams] | type[RegexParserScoringFnParams] = (
        BasicScoringFnParams
    )
    """The params class it takes (regex parsers need their regexes)."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def score_equality(row: dict[str, Any], params: ScoringFnParams) -> dict[str, Any]:
    return {"score": 1.0 if row["expected_answer"] == row["generated_answer"] else 0.0}


def score_subset_of(row: dict[str, Any], params: ScoringFnParams) -> dict[str, Any]:
    expected, generated = row["expected_answer"], row["generated_answer"]
    if isinstance(generated, list | dict):
        found = expected in generated
    else:
        found = _text(expected) in _text(generated)
    return {"score": 1.0 if found else 0.0}


def _regexes(params: ScoringFnParams) -> list[str]:
    assert isinstance(params, RegexParserScoringFnParams)
    return params.parsing_regexes


def score_multiple_choice(row: dict[str, Any], params: ScoringFnParams) -> dict[str, Any]:
    generated = _text(row["generated_answer"])
    parsed = None
    for pattern in _regexes(params):
        match = re.search(pattern, generated)
        if match:
            parsed = match.group(1) if match.groups() else match.group(0)
            break
    expected = row["expected_answer"]
    return {"score": 1.0 if parsed and parsed == expected else 0.0}


def score_math(row: dict[str, Any], params: ScoringFnParams) -> dict[str, Any]:
    regexes = _regexes(params)
    generated = comparable(first_answer(_text(row["generated_answer"])), regexes[0])
    expected = comparable(_text(row["expected_answer"]), r".*")
    return {"score": 1.0 if generated == expected else 0.0}


def score_docvqa(row: dict[str, Any], params: ScoringFnParams) -> dict[str, Any]:
    expected = row["expected_answer"]
    if isinstance(expected, str):
        try:
            expected = json.loads(expected)
        except json.JSONDecodeError:
            expected = [expected]
    if isinstance(expected, str):
        expected = [expected]
    if not isinstance(expected, list):
        raise BadRequestError(
            "basic::docvqa: expected_answer is a JSON list of the accepted answers",
            field="input_rows.expected_answer",
        )
    generated = normalize_answer(_text(row["generated_answer"]))
    return {"score": 1.0 if generated in [normalize_answer(_text(a)) for a in expected] else 0.0}


def _definition(
    name: str, resource: str, description: str, params: ScoringFnParams | None
) -> ScoringFn:
    return ScoringFn(
        identifier=f"basic::{name}",
        description=description,
        return_type=NumberType(),
        provider_id=PROVIDER_ID,
        provider_resource_id=resource,
        params=params,
    )


ACCURACY = [AggregationFunctionType.accuracy]


def builtin_functions() -> list[BuiltinFunction]:
    """Every builtin function of the provider (ifeval and bfcl are added by their modules)."""
    from stackray.providers.inline.scoring.basic.bfcl import score_bfcl
    from stackray.providers.inline.scoring.basic.ifeval import score_ifeval

    return [
        BuiltinFunction(
            _definition(
                "equality",
                "equality",
                "Returns 1.0 if the input is equal to the target, 0.0 otherwise.",
                BasicScoringFnParams(aggregation_functions=ACCURACY),
            ),
            ANSWERS,
            score_equality,
        ),
        BuiltinFunction(
            _definition(
                "subset_of",
                "subset-of",
                "Returns 1.0 if the expected is included in generated, 0.0 otherwise.",
                BasicScoringFnParams(aggregation_functions=ACCURACY),
            ),
            ANSWERS,
            score_subset_of,
        ),
        BuiltinFunction(
            _definition(
                "regex_parser_multiple_choice_answer",
                "regex-parser-multiple-choice-answer",
                "Extract answer from response matching Answer: [the_answer_letter], and "
                "compare with expected result",
                RegexParserScoringFnParams(
                    parsing_regexes=MULTIPLE_CHOICE_REGEXES, aggregation_functions=ACCURACY
                ),
            ),
            ANSWERS,
            score_multiple_choice,
            RegexParserScoringFnParams,
        ),
        BuiltinFunction(
            _definition(
                "regex_parser_math_response",
                "regex-parser-math-response",
                "For math related benchmarks, extract answer from the generated response and "
                "expected_answer and see if they match",
                RegexParserScoringFnParams(
                    parsing_regexes=MATH_ANSWER_REGEXES, aggregation_functions=ACCURACY
                ),
            ),
            ANSWERS,
            score_math,
            RegexParserScoringFnParams,
        ),
        BuiltinFunction(
            _definition(
                "docvqa",
                "docvqa",
                "DocVQA Visual Question & Answer scoring function",
                BasicScoringFnParams(aggregation_functions=ACCURACY),
            ),
            ANSWERS,
            score_docvqa,
        ),
        BuiltinFunction(
            _definition(
                "ifeval",
                "ifeval",
                "Eval intruction follow capacity by checkping how many instructions can be "
                "followed in each example",
                BasicScoringFnParams(
                    aggregation_functions=[AggregationFunctionType.weighted_average]
                ),
            ),
            ("instruction_id_list", "kwargs", "generated_answer"),
            score_ifeval,
        ),
        BuiltinFunction(
            _definition(
                "bfcl",
                "bfcl",
                "BFCL complex scoring",
                BasicScoringFnParams(aggregation_functions=ACCURACY),
            ),
            ("id", "generated_answer", "language", "function", "ground_truth"),
            score_bfcl,
        ),
    ]
