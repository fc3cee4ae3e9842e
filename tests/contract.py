"""The Llama Stack 0.2.12 contract (OpenAPI 3.1), for tests.

    from tests import contract
    contract.properties("ChatCompletionRequest")   # {name: resolved property schema}
    contract.validate("ChatCompletionResponse", body)  # raises ContractViolation
    for route in contract.routes(): ...

The file is `contract/llama-stack-0.2.12-openapi.yaml` at the repository root, or the
path in `STACKRAY_CONTRACT`. It is read once per process.
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

CONTRACT_PATH = Path(
    os.environ.get(
        "STACKRAY_CONTRACT",
        Path(__file__).resolve().parent.parent / "contract" / "llama-stack-0.2.12-openapi.yaml",
    )
)
REF_PREFIX = "#/components/schemas/"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


class ContractViolation(AssertionError):
    """A payload does not follow the contract's schema."""


@functools.cache
def load() -> dict[str, Any]:
    """The whole contract. Treat it as read-only: it is shared by every caller."""
    with open(CONTRACT_PATH) as f:
        return yaml.safe_load(f)


def schemas() -> dict[str, dict[str, Any]]:
    """`components.schemas`, by name."""
    return load()["components"]["schemas"]


def schema(name: str) -> dict[str, Any]:
    """One component schema as written (with `$ref`s)."""
    try:
        return schemas()[name]
    except KeyError:
        raise KeyError(f"the contract has no schema named {name!r}") from None


def ref_name(node: dict[str, Any]) -> str | None:
    """The component name a `{"$ref": ...}` node points at, else None."""
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        return ref[len(REF_PREFIX) :]
    return None


def resolve(node: str | dict[str, Any]) -> dict[str, Any]:
    """A copy of `node` (a schema name or a schema) with every `$ref` inlined.

    A reference back into a schema being inlined is left as a `$ref`, so recursive
    schemas terminate. Sibling keys of a `$ref` (a `description`, a `default`) are kept.
    """
    if isinstance(node, str):
        return _inline(schema(node), (node,))
    return _inline(node, ())


def _inline(node: Any, seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    name = ref_name(node)
    if name is not None and name not in seen:
        target = _inline(schema(name), (*seen, name))
        siblings = {k: _inline(v, seen) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}
    return {k: _inline(v, seen) for k, v in node.items()}


def properties(name: str) -> dict[str, dict[str, Any]]:
    """The properties of an object schema, resolved."""
    return resolve(name).get("properties", {})


def required(name: str) -> set[str]:
    """The required property names of an object schema."""
    return set(schema(name).get("required", []))


def _relax_one_of(node: Any) -> Any:
    # The contract writes unions as `oneOf` even where branches overlap: an integer is
    # also a number (`MetricInResponse.value`), "brave_search" is both a BuiltinTool and
    # a string (`ToolCall.tool_name`). Read as "exactly one", valid payloads would fail,
    # so unions are validated as `anyOf`.
    if isinstance(node, list):
        return [_relax_one_of(item) for item in node]
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _relax_one_of(v) for k, v in node.items()}
    return node


@functools.cache
def _components_for_validation() -> dict[str, Any]:
    return _relax_one_of(copy.deepcopy(load()["components"]))


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A JSON Schema (2020-12) validator for one component schema."""
    schema(name)  # a clear KeyError for an unknown name
    root = {"$ref": REF_PREFIX + name, "components": _components_for_validation()}
    return Draft202012Validator(root)


def validate(name: str, instance: Any) -> None:
    """Raise `ContractViolation` listing every way `instance` breaks schema `name`."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise ContractViolation(f"not a valid {name}:\n  " + "\n  ".join(lines))


@dataclass(frozen=True)
class Route:
    """One operation of the contract."""

    method: str  # upper case: "GET", "POST" ...
    path: str  # "/v1/models/{model_id}"
    tags: tuple[str, ...] = ()
    description: str = ""
    # Parameters by name: {"in": "path" | "query" | "header", "required": bool, "schema": ...}
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Request body schema by content type ("application/json", "multipart/form-data").
    request: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Schema of the 200 response by content type ("application/json", "text/event-stream").
    response: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def request_schema_name(self) -> str | None:
        """The component name of the JSON request body, if it is a `$ref`."""
        return ref_name(self.request.get("application/json", {}))

    @property
    def response_schema_name(self) -> str | None:
        """The component name of the JSON 200 response, if it is a `$ref`."""
        return ref_name(self.response.get("application/json", {}))

    @property
    def streams(self) -> bool:
        """Whether the route can answer with server-sent events."""
        return "text/event-stream" in self.response


@functools.cache
def routes() -> tuple[Route, ...]:
    """Every operation of the contract (107 of them), in file order."""
    found = []
    for path, item in load()["paths"].items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            ok = op.get("responses", {}).get("200", {})
            found.append(
                Route(
                    method=method.upper(),
                    path=path,
                    tags=tuple(op.get("tags", ())),
                    description=op.get("description", ""),
                    parameters={
                        p["name"]: {
                            "in": p["in"],
                            "required": p.get("required", False),
                            "schema": p.get("schema", {}),
                        }
                        for p in op.get("parameters", [])
                    },
                    request={
                        ctype: body.get("schema", {})
                        for ctype, body in op.get("requestBody", {}).get("content", {}).items()
                    },
                    response={
                        ctype: body.get("schema", {})
                        for ctype, body in ok.get("content", {}).items()
                    },
                )
            )
    return tuple(found)


def route(method: str, path: str) -> Route:
    """One operation, by method and path template."""
    for r in routes():
        if r.method == method.upper() and r.path == path:
            return r
    raise KeyError(f"the contract has no route {method.upper()} {path}")
