"""Final answers of math responses, normalized so that equal answers compare equal.

The steps are those of the MATH benchmark's evaluation (Hendrycks et al.; Minerva's
answer normalization), as Llama Stack 0.2.12's `basic::regex_parser_math_response` applies
them: take the answer the regex (or the last ``\\boxed{...}``) captures, drop units and
words, unwrap ``\\text``/``\\boxed``/``$``, standardize fractions and square roots, then
evaluate simple ``\\frac{a}{b}`` (and, when sympy's LaTeX parser is installed, whole
expressions) to a number in scientific notation.
"""

from __future__ import annotations

import re

_REPLACED = (
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
)

_UNIT_WORDS = (
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    '"',
    "\\dots",
)

_FRAC = re.compile(r"\\frac{([^}]+)}{([^}]+)}")


def first_answer(text: str, markers: tuple[str, ...] = ("Q:", "A:")) -> str:
    """The text before the first of `markers` (a model going on to ask itself more)."""
    for marker in markers:
        text = text.split(marker)[0]
    return text


def last_boxed(text: str) -> str:
    """The content of the last ``\\boxed{...}`` (or ``\\boxed x$``), or ""."""
    start = text.rfind("\\boxed")
    if start < 0:
        return ""
    rest = text[start + len("\\boxed") :].strip()
    braced = rest.startswith("{")
    depth = 0
    for i, ch in enumerate(rest):
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0 and (braced or ch == "$"):
            rest = rest[: i + 1] if braced else rest[:i]
            break
    else:
        return ""
    rest = rest.strip()
    while rest.startswith("{") and rest.endswith("}"):
        rest = rest[1:-1].strip()
    return rest


def _sqrt_braces(s: str) -> str:
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        if not part:
            return s
        out += "\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:])
    return out


def _frac_braces(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{"):
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, tail = part[0], part[1], part[2:]
        out += "{" + a + "}" + (b + tail if b == "{" else "{" + b + "}" + tail)
    return out


def _slash_fraction(s: str) -> str:
    pieces = s.split("/")
    if len(pieces) != 2:
        return s
    try:
        a, b = int(pieces[0]), int(pieces[1])
    except ValueError:
        return s
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def _standardize(s: str) -> str:
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    for variant in ("cfrac", "tfrac", "dfrac"):
        s = s.replace(variant, "frac")
    for wrapper in ("\\left", "\\le", "\\right", "^{\\circ}", "^\\circ", "\\$"):
        s = s.replace(wrapper, "")
    if "\\text{ " in s:  # units written after the number
        pieces = s.split("\\text{ ")
        if len(pieces) == 2:
            s = pieces[0]
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    s = s.split("=")[-1]
    s = _sqrt_braces(s).replace(" ", "")
    s = _frac_braces(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _slash_fraction(s)


def normalize_final_answer(answer: str, pattern: str, match_first: bool = True) -> str:
    """The final answer of `answer`: what `pattern` captures (else the last boxed value,
    else the whole text), normalized."""
    found = re.findall(pattern, answer)
    extracted = (found[0] if match_first else found[-1]) if found else last_boxed(answer)
    if isinstance(extracted, tuple):  # a pattern with several groups
        extracted = next((g for g in extracted if g), "")
    if not extracted:
        return answer
    s = extracted.split("=")[-1]
    for old, new in _REPLACED:
        s = s.replace(old, new)
    for word in _UNIT_WORDS:
        s = s.replace(word, "")
    s = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s)
    for command in ("text", "textbf", "overline"):
        s = re.sub(r"(\\" + command + r"\{)(.*?)(\})", "\\2", s)
    s = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", s)
    s = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)
    s = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", s)
    s = s.replace("$", "")
    if s.replace(",", "").isdigit():
        s = s.replace(",", "")
    if re.match(r"\([a-zA-Z]\)", s):
        s = s[1]
    return _standardize(s)


def evaluate_fractions(expression: str, fmt: str = "0.2e") -> str:
    """Each simple ``\\frac{a}{b}`` of numbers replaced by its value."""
    out = expression
    for match in _FRAC.finditer(expression):
        try:
            value = float(match.group(1)) / float(match.group(2))
        except (ValueError, ZeroDivisionError):
            continue
        out = out.replace(match.group(), format(value, fmt), 1)
    return out


def evaluate_latex(expression: str, fmt: str = ".2e") -> str:
    """The numeric value of a LaTeX expression when sympy can parse it (its LaTeX parser
    needs the antlr4 runtime), else the expression unchanged."""
    try:
        from sympy.parsing.latex import parse_latex

        return format(float(parse_latex(expression).evalf()), fmt)
    except Exception:  # no parser, not LaTeX, not a number: compare as text
        return expression


def comparable(answer: str, pattern: str, match_first: bool = True) -> str:
    return evaluate_fractions(evaluate_latex(normalize_final_answer(answer, pattern, match_first)))
