"""The basic scoring functions on known inputs: equality, subset_of, the multiple-choice
and math regex parsers, docvqa's normalization."""

from __future__ import annotations

import json

import pytest

from stackray.api.scoring import BasicScoringFnParams, RegexParserScoringFnParams
from stackray.providers.inline.scoring.basic.docvqa import normalize_answer
from stackray.providers.inline.scoring.basic.functions import (
    MATH_ANSWER_REGEXES,
    MULTIPLE_CHOICE_REGEXES,
    score_docvqa,
    score_equality,
    score_math,
    score_multiple_choice,
    score_subset_of,
)
from stackray.providers.inline.scoring.basic.math_answer import (
    evaluate_fractions,
    last_boxed,
    normalize_final_answer,
)

BASIC = BasicScoringFnParams()
MC = RegexParserScoringFnParams(parsing_regexes=MULTIPLE_CHOICE_REGEXES)
MATH = RegexParserScoringFnParams(parsing_regexes=MATH_ANSWER_REGEXES)


def row(expected, generated):
    return {"expected_answer": expected, "generated_answer": generated}


def test_equality_compares_exactly():
    assert score_equality(row("Paris", "Paris"), BASIC) == {"score": 1.0}
    assert score_equality(row("Paris", "paris"), BASIC) == {"score": 0.0}
    assert score_equality(row(4, 4), BASIC) == {"score": 1.0}


def test_subset_of_looks_for_the_expected_text_in_the_generated():
    assert score_subset_of(row("blue", "The sky is blue."), BASIC) == {"score": 1.0}
    assert score_subset_of(row("Blue", "The sky is blue."), BASIC) == {"score": 0.0}
    assert score_subset_of(row(4, "2+2 is 4"), BASIC) == {"score": 1.0}
    assert score_subset_of(row("b", ["a", "b"]), BASIC) == {"score": 1.0}


@pytest.mark.parametrize(
    ("generated", "expected", "score"),
    [
        ("The best answer is B", "B", 1.0),
        ("Reasoning...\nAnswer: C", "C", 1.0),
        ("answer : d", "d", 1.0),  # case-insensitive marker, the letter as written
        ("Antwort: A", "A", 1.0),
        ("答案：B", "B", 1.0),
        ("Réponse : D", "D", 1.0),
        ("Answer: B", "C", 0.0),
        ("I think it's B", "B", 0.0),  # no marker: nothing parsed
    ],
)
def test_multiple_choice_parser(generated, expected, score):
    assert score_multiple_choice(row(expected, generated), MC) == {"score": score}


def test_multiple_choice_takes_the_first_regex_that_matches():
    params = RegexParserScoringFnParams(parsing_regexes=[r"Final: (\w)", r"Answer: (\w)"])
    assert score_multiple_choice(row("A", "Answer: B. Final: A"), params) == {"score": 1.0}


@pytest.mark.parametrize(
    ("generated", "expected", "score"),
    [
        ("So the final answer is $\\boxed{42}$", "42", 1.0),
        ("The final answer is: $\\boxed{\\frac{1}{2}}$", "0.5", 1.0),
        ("The final answer is $\\boxed{\\dfrac{3}{4}}$", "\\frac34", 1.0),
        ("The final answer is $\\boxed{10 \\text{ cm}}$", "10", 1.0),
        ("The final answer is $\\boxed{1,000}$", "1000", 1.0),
        ("The final answer is $\\boxed{(B)}$", "B", 1.0),
        ("Work: x = 3.\n\\boxed{3}", "3", 1.0),  # no phrase: the last boxed value
        ("The final answer is $\\boxed{41}$", "42", 0.0),
        ("Q: what? A: The final answer is $\\boxed{5}$", "5", 0.0),  # cut at the first marker
    ],
)
def test_math_response_parser(generated, expected, score):
    assert score_math(row(expected, generated), MATH) == {"score": score}


def test_math_normalization_steps():
    assert last_boxed("a \\boxed{x^{2}} and \\boxed{\\frac{1}{2}} end") == "\\frac{1}{2}"
    assert last_boxed("no box") == ""
    assert normalize_final_answer("\\boxed{5 \\text{ dollars}}", r"zzz") == "5"
    assert normalize_final_answer("x = \\sqrt2", r"(.*)") == "\\sqrt{2}"
    assert normalize_final_answer("3/4", r"(.*)") == "\\frac{3}{4}"
    assert evaluate_fractions("\\frac{1}{4}") == "2.50e-01"
    assert evaluate_fractions("\\frac{a}{4}") == "\\frac{a}{4}"


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Answer!", "answer"),
        ("two dogs", "2 dogs"),
        ("Its 1,000 dollars", "its 1000 dollars"),
        ("dont", "don't"),
        ("U.S.A.", "usa"),
        ("3.5 km", "3.5 km"),
        ("left-hand side", "left hand side"),
    ],
)
def test_docvqa_normalization(text, normalized):
    assert normalize_answer(text) == normalized


def test_docvqa_matches_any_accepted_answer():
    accepted = json.dumps(["The United Nations", "UN"])
    assert score_docvqa(row(accepted, "united nations"), BASIC) == {"score": 1.0}
    assert score_docvqa(row(accepted, "un"), BASIC) == {"score": 1.0}
    assert score_docvqa(row(accepted, "NATO"), BASIC) == {"score": 0.0}
    assert score_docvqa(row(["Two"], "2"), BASIC) == {"score": 1.0}
