"""`basic::ifeval`: the verifiable instructions of IFEval (Zhou et al., 2023).

A row lists its instructions (`instruction_id_list`) and each one's arguments (`kwargs`,
aligned); its score is the fraction of instructions the `generated_answer` follows, its
weight the number of instructions (aggregated with `weighted_average`). These are the 25
instructions Llama Stack 0.2.12 checks. Sentences are split by a rule-based splitter
(nltk's punkt data is a run-time download); language checks use `langdetect`. An
instruction id it does not know, or missing arguments, is a 400 naming them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from stackray.api.errors import BadRequestError
from stackray.api.scoring import ScoringFnParams

Check = Callable[[str, dict[str, Any]], bool]

_WORD = re.compile(r"\w+")
_ABBREVIATIONS = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Ltd|Co|vs|etc|e\.g|i\.e|Ph\.D|U\.S)\.", re.IGNORECASE
)


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: ends at ., ! or ? followed by space or the end, except after
    common abbreviations, initials and inside decimal numbers."""
    protected = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "<dot>"), text)
    protected = re.sub(r"\b([A-Z])\.(?=\s)", r"\1<dot>", protected)  # initials
    protected = re.sub(r"(\d)\.(\d)", r"\1<dot>\2", protected)
    pieces = re.split(r"(?<=[.!?])[\"')\]]*\s+", protected.replace("\n", " "))
    return [p.replace("<dot>", ".").strip() for p in pieces if p.strip()]


def _compare(count: int, target: int, relation: str, instruction: str) -> bool:
    if relation == "less than":
        return count < target
    if relation == "at least":
        return count >= target
    raise BadRequestError(
        f"ifeval instruction {instruction!r}: relation must be 'less than' or 'at least', "
        f"got {relation!r}",
        field="input_rows.kwargs",
    )


def _language(text: str) -> str | None:
    try:
        import langdetect
    except ImportError:
        raise BadRequestError(
            "ifeval's language checks need the langdetect package, which is not installed",
            field="input_rows.instruction_id_list",
        ) from None
    try:
        return str(langdetect.detect(text))
    except langdetect.LangDetectException:  # no features to judge by: count it as followed
        return None


def _paragraphs_by_rule(text: str) -> list[str]:
    return re.split(r"\s?\*\*\*\s?", text)


def number_paragraphs(text: str, kw: dict[str, Any]) -> bool:
    parts = _paragraphs_by_rule(text)
    count = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if i in (0, len(parts) - 1):
                count -= 1
            else:
                return False
    return count == int(kw["num_paragraphs"])


def nth_paragraph_first_word(text: str, kw: dict[str, Any]) -> bool:
    paragraphs = [p for p in re.split(r"\n\n", text) if p.strip()]
    nth = int(kw["nth_paragraph"])
    if len(paragraphs) != int(kw["num_paragraphs"]) or not 1 <= nth <= len(paragraphs):
        return False
    words = paragraphs[nth - 1].strip().split()
    if not words:
        return False
    first = words[0].lstrip("'\"").rstrip(".,!?;:'\"").lower()
    return first == str(kw["first_word"]).lower()


def postscript(text: str, kw: dict[str, Any]) -> bool:
    marker = str(kw["postscript_marker"]).strip().lower()
    if marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    elif marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return bool(re.findall(pattern, text.lower(), flags=re.MULTILINE))


def bullet_lists(text: str, kw: dict[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)
    return len(stars) + len(dashes) == int(kw["num_bullets"])


def highlighted_sections(text: str, kw: dict[str, Any]) -> bool:
    found = re.findall(r"\*[^\n\*]*\*", text) + re.findall(r"\*\*[^\n\*]*\*\*", text)
    count = sum(1 for h in found if h.strip("*").strip())
    return count >= int(kw["num_highlights"])


def multiple_sections(text: str, kw: dict[str, Any]) -> bool:
    splitter = re.escape(str(kw["section_spliter"]).strip())
    sections = re.split(r"\s?" + splitter + r"\s?\d+\s?", text)
    return len(sections) - 1 >= int(kw["num_sections"])


def json_format(text: str, kw: dict[str, Any]) -> bool:
    body = text.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        body = body.removeprefix(fence)
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def two_responses(text: str, kw: dict[str, Any]) -> bool:
    parts = [p.strip() for p in text.split("******")]
    if any(not p for p in parts[1:-1]):
        return False
    parts = [p for p in parts if p]
    return len(parts) == 2 and parts[0] != parts[1]


def capital_word_frequency(text: str, kw: dict[str, Any]) -> bool:
    capitals = [w for w in re.findall(r"\b\w+\b", text) if w.isupper()]
    return _compare(
        len(capitals),
        int(kw["capital_frequency"]),
        str(kw["capital_relation"]),
        "change_case:capital_word_frequency",
    )


def _english(text: str) -> bool:
    language = _language(text)
    return language is None or language == "en"


INSTRUCTIONS: dict[str, tuple[tuple[str, ...], Check]] = {
    # id: (the kwargs it needs, the check)
    "keywords:existence": (
        ("keywords",),
        lambda t, kw: all(re.search(re.escape(k), t, re.IGNORECASE) for k in kw["keywords"]),
    ),
    "keywords:frequency": (
        ("keyword", "frequency", "relation"),
        lambda t, kw: _compare(
            len(re.findall(re.escape(str(kw["keyword"])), t, re.IGNORECASE)),
            int(kw["frequency"]),
            str(kw["relation"]),
            "keywords:frequency",
        ),
    ),
    "keywords:forbidden_words": (
        ("forbidden_words",),
        lambda t, kw: (
            not any(
                re.search(r"\b" + re.escape(w) + r"\b", t, re.IGNORECASE)
                for w in kw["forbidden_words"]
            )
        ),
    ),
    "keywords:letter_frequency": (
        ("letter", "let_frequency", "let_relation"),
        lambda t, kw: _compare(
            t.lower().count(str(kw["letter"]).lower()),
            int(kw["let_frequency"]),
            str(kw["let_relation"]),
            "keywords:letter_frequency",
        ),
    ),
    "language:response_language": (
        ("language",),
        lambda t, kw: (lang := _language(t)) is None or lang == kw["language"],
    ),
    "length_constraints:number_sentences": (
        ("num_sentences", "relation"),
        lambda t, kw: _compare(
            len(split_sentences(t)),
            int(kw["num_sentences"]),
            str(kw["relation"]),
            "length_constraints:number_sentences",
        ),
    ),
    "length_constraints:number_paragraphs": (("num_paragraphs",), number_paragraphs),
    "length_constraints:number_words": (
        ("num_words", "relation"),
        lambda t, kw: _compare(
            count_words(t),
            int(kw["num_words"]),
            str(kw["relation"]),
            "length_constraints:number_words",
        ),
    ),
    "length_constraints:nth_paragraph_first_word": (
        ("num_paragraphs", "nth_paragraph", "first_word"),
        nth_paragraph_first_word,
    ),
    "detectable_content:number_placeholders": (
        ("num_placeholders",),
        lambda t, kw: len(re.findall(r"\[.*?\]", t)) >= int(kw["num_placeholders"]),
    ),
    "detectable_content:postscript": (("postscript_marker",), postscript),
    "detectable_format:number_bullet_lists": (("num_bullets",), bullet_lists),
    "detectable_format:constrained_response": (
        (),
        lambda t, kw: any(
            option in t.strip()
            for option in ("My answer is yes.", "My answer is no.", "My answer is maybe.")
        ),
    ),
    "detectable_format:number_highlighted_sections": (("num_highlights",), highlighted_sections),
    "detectable_format:multiple_sections": (("section_spliter", "num_sections"), multiple_sections),
    "detectable_format:json_format": ((), json_format),
    "detectable_format:title": (
        (),
        lambda t, kw: any(title.strip("<>").strip() for title in re.findall(r"<<[^\n]+>>", t)),
    ),
    "combination:two_responses": ((), two_responses),
    "combination:repeat_prompt": (
        ("prompt_to_repeat",),
        lambda t, kw: t.strip().lower().startswith(str(kw["prompt_to_repeat"]).strip().lower()),
    ),
    "startend:end_checker": (
        ("end_phrase",),
        lambda t, kw: t.strip().strip('"').lower().endswith(str(kw["end_phrase"]).strip().lower()),
    ),
    "change_case:capital_word_frequency": (
        ("capital_frequency", "capital_relation"),
        capital_word_frequency,
    ),
    "change_case:english_capital": ((), lambda t, kw: t.isupper() and _english(t)),
    "change_case:english_lowercase": ((), lambda t, kw: t.islower() and _english(t)),
    "punctuation:no_comma": ((), lambda t, kw: "," not in t),
    "startend:quotation": (
        (),
        lambda t, kw: len(t.strip()) > 1 and t.strip()[0] == '"' and t.strip()[-1] == '"',
    ),
}


def follows(instruction: str, text: str, kwargs: dict[str, Any]) -> bool:
    """Whether `text` follows `instruction` with `kwargs`."""
    if instruction not in INSTRUCTIONS:
        raise BadRequestError(
            f"basic::ifeval: unknown instruction {instruction!r} (instructions: "
            f"{', '.join(sorted(INSTRUCTIONS))})",
            field="input_rows.instruction_id_list",
        )
    needed, check = INSTRUCTIONS[instruction]
    args = {k: v for k, v in kwargs.items() if v is not None}
    missing = [k for k in needed if k not in args]
    if missing:
        raise BadRequestError(
            f"basic::ifeval: instruction {instruction!r} needs kwargs {', '.join(missing)}",
            field="input_rows.kwargs",
        )
    if not text:
        return False
    try:
        return bool(check(text, args))
    except (TypeError, ValueError) as e:
        raise BadRequestError(
            f"basic::ifeval: instruction {instruction!r}: bad kwargs ({e})",
            field="input_rows.kwargs",
        ) from None


def score_ifeval(row: dict[str, Any], params: ScoringFnParams) -> dict[str, Any]:
    instructions = row["instruction_id_list"]
    kwargs = row["kwargs"]
    if isinstance(instructions, str):
        instructions = json.loads(instructions)
    if isinstance(kwargs, str):
        kwargs = json.loads(kwargs)
    if not isinstance(instructions, list) or not isinstance(kwargs, list):
        raise BadRequestError(
            "basic::ifeval: instruction_id_list and kwargs are lists", field="input_rows"
        )
    if len(kwargs) < len(instructions):
        raise BadRequestError(
            f"basic::ifeval: {len(instructions)} instructions but {len(kwargs)} kwargs",
            field="input_rows.kwargs",
        )
    text = str(row["generated_answer"]).strip()
    followed = [follows(i, text, kw or {}) for i, kw in zip(instructions, kwargs, strict=False)]
    if not followed:
        return {"score": 0.0, "weight": 0.0}
    return {"score": sum(followed) / len(followed), "weight": float(len(followed))}
