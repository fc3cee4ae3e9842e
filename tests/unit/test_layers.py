"""The layer rules of the package, read from the source: what may import what, and no
import circles.

- `stackray.api` imports nothing else of ours;
- `stackray.runtime` and `stackray.providers` import nothing from `stackray.deployments`
  (the runtime works without Serve), not even inside a function;
- no circle among module-level imports (imports for type checking only excepted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import stackray

ROOT = Path(stackray.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The stackray modules `path` imports (an `import a.b` names `a.b`; a `from a import
    b` names `a.b` when that is a module, else `a`)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if _is_module(candidate) else base)
            if top_level_only:
                if isinstance(node, (ast.If, ast.Try, ast.With)):
                    visit(
                        [
                            *node.body,
                            *getattr(node, "orelse", []),
                            *getattr(node, "finalbody", []),
                            *[s for h in getattr(node, "handlers", []) for s in h.body],
                        ]
                    )
            else:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        visit([child])
                    elif hasattr(child, "body") and isinstance(child.body, list):
                        visit(child.body)

    visit(tree.body)
    return {m for m in found if m == "stackray" or m.startswith("stackray.")}


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").exists() or (
        ROOT.parent / rel / "__init__.py"
    ).exists()


def sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def test_api_imports_nothing_else_of_ours():
    bad = {
        module_name(p): sorted(
            m for m in imports(p, top_level_only=False) if not m.startswith("stackray.api")
        )
        for p in sources()
        if module_name(p).startswith("stackray.api")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_runtime_and_providers_do_not_import_deployments():
    bad = {}
    for p in sources():
        name = module_name(p)
        if name.startswith(("stackray.runtime", "stackray.providers")):
            found = sorted(
                m for m in imports(p, top_level_only=False) if m.startswith("stackray.deployments")
            )
            if found:
                bad[name] = found
    assert bad == {}


def test_no_import_circles():
    graph = {module_name(p): imports(p, top_level_only=True) for p in sources()}
    # A package's own `__init__` is imported by each of its modules: not an edge back.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if d in graph and not name.startswith(d + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert cycles == []
