"""What `make run` installs: the stack, and the clients the README tour and the docs'
examples use, so a new user runs them with no further install."""

from __future__ import annotations

import ast
import re
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def extras() -> dict[str, list[str]]:
    """The extras of pyproject.toml (its lists are Python literals; tomllib is 3.11+)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    found = {}
    for name, body in re.findall(r"^([\w-]+) = (\[.*?\])$", section, re.M | re.S):
        lines = [line.split("#", 1)[0] for line in body.splitlines()]
        found[name] = ast.literal_eval("\n".join(lines))
    return found


def run_stamp_extras() -> set[str]:
    """The extras the Makefile's run install (`$(STAMP_RUN)`) asks for."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(STAMP_RUN): ", 1)[1].split("\n\n", 1)[0]
    [names] = re.findall(r'install -q -e "\.\[([^\]]+)\]"', recipe)
    return set(names.split(","))


def test_make_run_installs_the_tour_clients():
    client = extras()["client"]
    assert "llama-stack-client==0.2.12" in client
    assert {"fire", "requests"} <= set(client)
    assert any(req.startswith("openai") for req in client)
    assert "client" in run_stamp_extras()
    # The tests use the same clients as a user of `make run`.
    assert set(client) <= set(extras()["test"])


def test_the_installed_clients_are_the_ones_the_contract_is_for():
    assert metadata.version("llama-stack-client") == "0.2.12"
    for name in ("fire", "requests", "openai"):
        assert metadata.version(name)


def test_make_client_checks_both_clients_import():
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "client"], capture_output=True, text=True, timeout=30
    )
    assert dry.returncode == 0, dry.stderr
    assert "import llama_stack_client, openai" in dry.stdout
