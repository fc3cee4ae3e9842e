"""`basic::ifeval`'s instructions on responses that follow them and responses that do not."""

from __future__ import annotations

import pytest

from stackray.api.errors import BadRequestError
from stackray.api.scoring import BasicScoringFnParams
from stackray.providers.inline.scoring.basic.ifeval import (
    INSTRUCTIONS,
    follows,
    score_ifeval,
    split_sentences,
)

CASES = [
    # (instruction, kwargs, a response that follows it, one that does not)
    ("punctuation:no_comma", {}, "No commas here.", "Well, no."),
    ("keywords:existence", {"keywords": ["ray", "serve"]}, "Ray can Serve models.", "Ray only."),
    (
        "keywords:frequency",
        {"keyword": "cat", "frequency": 2, "relation": "at least"},
        "A cat and a CAT.",
        "One cat.",
    ),
    (
        "keywords:frequency",
        {"keyword": "cat", "frequency": 2, "relation": "less than"},
        "One cat.",
        "cat cat",
    ),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "All good.", "That is BAD."),
    (
        "keywords:letter_frequency",
        {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
        "Zig zag",
        "Zig",
    ),
    (
        "language:response_language",
        {"language": "en"},
        "This answer is written in English.",
        "Dies ist eine Antwort auf Deutsch geschrieben.",
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "less than"},
        "One. Two.",
        "One. Two. Three! Four?",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "First.\n***\nSecond.",
        "Only one.",
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "at least"},
        "one two three four five",
        "one two",
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "First part.\n\nThen the second.",
        "First part.\n\nAfter that.",
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Dear [name] at [address]",
        "Dear [name]",
    ),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", "Hi. Bye."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b", "* a\n* b\n* c"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes."),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "*one* and **two**",
        "*one*",
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": 2},
        "SECTION 1\na\nSECTION 2\nb",
        "SECTION 1\na",
    ),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "{a: 1}"),
    ("detectable_format:title", {}, "<<My Title>>\ntext", "My Title\ntext"),
    ("combination:two_responses", {}, "First.\n******\nSecond.", "First.\n******\nFirst."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "Say hi. Hi!", "Hi!"),
    (
        "startend:end_checker",
        {"end_phrase": "Is there anything else?"},
        "Done. Is there anything else?",
        "Done.",
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "USE THE CAPS",
        "Use caps",
    ),
    ("change_case:english_capital", {}, "THIS IS ALL CAPITAL LETTERS IN ENGLISH", "This is not"),
    ("change_case:english_lowercase", {}, "this is all lowercase english text", "This is Not"),
    ("startend:quotation", {}, '"Quoted."', "Not quoted."),
]


def test_every_instruction_is_covered():
    assert {c[0] for c in CASES} == set(INSTRUCTIONS)
    assert len(INSTRUCTIONS) == 25


@pytest.mark.parametrize(("instruction", "kwargs", "good", "bad"), CASES)
def test_instruction(instruction, kwargs, good, bad):
    assert follows(instruction, good, kwargs) is True
    assert follows(instruction, bad, kwargs) is False


def test_sentences_are_split_with_abbreviations_and_numbers_kept():
    assert split_sentences("Dr. Smith paid 3.5 dollars. Then he left! Why?") == [
        "Dr. Smith paid 3.5 dollars.",
        "Then he left!",
        "Why?",
    ]


def test_a_row_scores_the_fraction_followed_weighted_by_the_count():
    row = {
        "instruction_id_list": ["punctuation:no_comma", "startend:quotation", "keywords:existence"],
        "kwargs": [{}, {}, {"keywords": ["ray"], "unused": None}],
        "generated_answer": "Ray, serve",
    }
    assert score_ifeval(row, BasicScoringFnParams()) == {"score": 1 / 3, "weight": 3.0}
    empty = {"instruction_id_list": [], "kwargs": [], "generated_answer": "x"}
    assert score_ifeval(empty, BasicScoringFnParams()) == {"score": 0.0, "weight": 0.0}


def test_unknown_instructions_and_missing_kwargs_are_400s():
    with pytest.raises(BadRequestError, match="unknown instruction 'x:y'"):
        follows("x:y", "text", {})
    with pytest.raises(BadRequestError, match="needs kwargs num_words, relation"):
        follows("length_constraints:number_words", "text", {})
    with pytest.raises(BadRequestError, match="relation must be"):
        follows("length_constraints:number_words", "text", {"num_words": 1, "relation": "about"})
