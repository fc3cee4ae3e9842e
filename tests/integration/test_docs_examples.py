"""The Python examples of the README and docs/, run as written against the shared stack
(only the address changed), so they stay true. Examples that need what only the reader
has (their own files, their own MCP server) are listed in NOT_RUN with the reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(`{3,})python\n(.*?)^\1$", re.S | re.M)

# An example's first distinctive text -> why it is not run here.
NOT_RUN = {
    'open("report.pdf"': "uploads a file of the reader's",
    'open("handbook.pdf"': "uploads a file of the reader's",
    "localhost:8000": "registers the reader's own MCP server",
    "file:///srv/docs": "reads a file of the reader's",
}

# Files in the order their examples build on each other: the vector_io example makes the
# `docs` vector db that the agents example searches.
ORDER = [
    "README.md",
    "docs/vector_io.md",
    "docs/agents.md",
    "docs/safety.md",
    "docs/providers.md",
    "docs/telemetry.md",
    "docs/files.md",
    "docs/tools.md",
]


def examples() -> list[tuple[str, str]]:
    found = []
    for name in ORDER:
        text = (ROOT / name).read_text()
        for n, match in enumerate(FENCE.finditer(text), 1):
            code = match.group(2)
            if "localhost:8321" not in code:
                continue  # not a client example (a library snippet, a provider skeleton)
            if any(marker in code for marker in NOT_RUN):
                continue
            found.append((f"{name}#{n}", code))
    return found


EXAMPLES = examples()


def test_the_examples_are_found():
    names = [name for name, _ in EXAMPLES]
    assert len(names) >= 8, names
    for doc in ("README.md", "docs/agents.md", "docs/safety.md", "docs/vector_io.md"):
        assert any(n.startswith(doc + "#") for n in names), doc


@pytest.mark.parametrize("name,code", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_runs_as_written(stack, name, code):
    code = code.replace("http://localhost:8321", stack.base_url)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
