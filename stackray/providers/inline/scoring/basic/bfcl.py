"""`basic::bfcl`: the Berkeley Function Calling Leaderboard's AST check.

The `generated_answer` is a list of Python calls (``[get_weather(city="Paris")]``),
decoded with Python's own parser. Each call is checked against the row's
`ground_truth` (``[{"get_weather": {"city": ["Paris", "paris"]}}]``: each parameter's
accepted values, ``""`` among them when it may be left out) and the function docs in
`function` (required parameters, types). The test category comes from the row's `id`
(``simple_12`` -> simple): in `parallel*` categories the calls may come in any order;
in `irrelevance` ones the model must call nothing. Rows whose `language` is not Python
are decoded the same way (Java and JavaScript call syntax that Python cannot parse
scores 0, with the error in the row).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from stackray.api.scoring import ScoringFnParams

_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "float": (float, int),
    "number": (float, int),
    "string": (str,),
    "boolean": (bool,),
    "array": (list, tuple),
    "tuple": (list, tuple),
    "dict": (dict,),
    "object": (dict,),
}


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Call):  # a nested call as an argument: keep its source text
        return ast.unparse(node)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return ast.unparse(node)
    return ast.literal_eval(node)


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    raise ValueError(f"not a function name: {ast.unparse(func)}")


def decode_calls(text: str) -> list[dict[str, dict[str, Any]]]:
    """``[f(a=1), g(b="x")]`` (brackets optional) as ``[{"f": {"a": 1}}, {"g": {"b": "x"}}]``."""
    source = text.strip().removeprefix("```python").removeprefix("```").removesuffix("```")
    source = source.strip()
    if not source.startswith("["):
        source = f"[{source}]"
    tree = ast.parse(source, mode="eval")
    if not isinstance(tree.body, ast.List | ast.Tuple):
        raise ValueError("expected a list of function calls")
    calls = []
    for element in tree.body.elts:
        if not isinstance(element, ast.Call):
            raise ValueError(f"not a function call: {ast.unparse(element)}")
        if element.args:
            raise ValueError(f"{_name(element.func)}: positional arguments are not accepted")
        calls.append(
            {
                _name(element.func): {
                    kw.arg: _literal(kw.value) for kw in element.keywords if kw.arg is not None
                }
            }
        )
    return calls


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"[ ,./\-_*^]", "", value).lower().replace("'", '"')
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return value


def _same_value(value: Any, accepted: list[Any]) -> bool:
    for candidate in accepted:
        if candidate == "":
            continue
        if isinstance(candidate, bool) or isinstance(value, bool):
            if value is candidate:
                return True
            continue
        if isinstance(candidate, int | float) and isinstance(value, int | float):
            if float(candidate) == float(value):
                return True
            continue
        if _normalize(candidate) == _normalize(value):
            return True
    return False


def _doc_for(name: str, docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    for doc in docs:
        if doc.get("name") in (name, name.replace("_", ".")) or str(doc.get("name", "")).replace(
            ".", "_"
        ) == name.replace(".", "_"):
            return doc
    return None


def check_call(
    call: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]], docs: list[dict[str, Any]]
) -> str | None:
    """None when `call` matches `expected`, else why not."""
    [(name, args)] = call.items()
    [(want, accepted)] = expected.items()
    if name.replace(".", "_") != want.replace(".", "_"):
        return f"called {name}, expected {want}"
    doc = _doc_for(want, docs) or {}
    parameters = doc.get("parameters", {}) or {}
    properties = parameters.get("properties", {}) or {}
    for required in parameters.get("required", []) or []:
        if required not in args:
            return f"{name}: missing required parameter {required!r}"
    for param, value in args.items():
        if param not in accepted:
            return f"{name}: unexpected parameter {param!r}"
        kind = str((properties.get(param) or {}).get("type", "")).lower()
        types = _TYPES.get(kind)
        # bool is an int to Python, but not an integer (or a float) parameter here.
        if types and not (isinstance(value, types) and isinstance(value, bool) == (bool in types)):
            return f"{name}: parameter {param!r} should be of type {kind}, got {value!r}"
        if not _same_value(value, list(accepted[param])):
            return f"{name}: parameter {param!r} is {value!r}, accepted: {accepted[param]!r}"
    for param, values in accepted.items():
        if param not in args and "" not in values:
            return f"{name}: missing parameter {param!r}"
    return None


def _match_all(
    calls: list[dict[str, Any]], expected: list[dict[str, Any]], docs: list[dict[str, Any]]
) -> str | None:
    """Match the calls to the expected ones in any order (backtracking)."""
    if len(calls) != len(expected):
        return f"{len(calls)} calls, expected {len(expected)}"
    if not calls:
        return None
    first, rest = calls[0], calls[1:]
    reason = None
    for i, candidate in enumerate(expected):
        reason = check_call(first, candidate, docs)
        if reason is None and _match_all(rest, expected[:i] + expected[i + 1 :], docs) is None:
            return None
    return reason or "the calls do not match the expected ones"


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def check_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row's verdict: whether it called anything, is valid, and why not."""
    category = re.sub(r"_[0-9_-]+$", "", str(row["id"]))
    try:
        calls = decode_calls(str(row["generated_answer"]))
    except (SyntaxError, ValueError) as e:
        return {"category": category, "contains_call": False, "valid": False, "error": str(e)}
    if not calls:
        return {"category": category, "contains_call": False, "valid": False, "error": "no call"}
    docs = _load(row["function"])
    docs = docs if isinstance(docs, list) else [docs]
    expected = _load(row["ground_truth"])
    expected = expected if isinstance(expected, list) else [expected]
    if category.startswith("parallel"):
        reason = _match_all(calls, expected, docs)
    elif len(calls) != 1 or len(expected) != 1:
        reason = f"{len(calls)} calls, expected one"
    else:
        reason = check_call(calls[0], expected[0], docs)
    return {
        "category": category,
        "contains_call": True,
        "valid": reason is None,
        "error": reason or "",
    }


def score_bfcl(row: dict[str, Any], params: ScoringFnParams) -> dict[str, Any]:
    verdict = check_row(row)
    if verdict["category"] in ("irrelevance", "live_irrelevance"):
        ok = not verdict["contains_call"]
    elif verdict["category"] == "live_relevance":
        ok = verdict["contains_call"]
    else:
        ok = verdict["valid"]
    return {"score": 1.0 if ok else 0.0}
