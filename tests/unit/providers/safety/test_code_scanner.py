"""`inline::code-scanner`: Meta's CodeShield for real (its regex rules, and semgrep rules
run by semgrep's `semgrep-core`) on code in messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stackray.api.safety import RunShieldRequest
from stackray.providers.inline.safety.code_scanner.impl import code_blocks
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack

SHELL = "import subprocess\nsubprocess.call('ls ' + user_dir, shell=True)\n"
MD5 = "import hashlib\ndigest = hashlib.md5(password.encode()).hexdigest()\n"
PICKLE = "import pickle\ndata = pickle.loads(blob)\n"
SAFE = "def add(a, b):\n    return a + b\n"


def start(tmp_path, **config: Any) -> Any:
    stack = parse_config(
        {
            "version": 2,
            "image_name": "code-scanner-test",
            "apis": ["safety"],
            "providers": {
                "safety": [
                    {
                        "provider_id": "code-scanner",
                        "provider_type": "inline::code-scanner",
                        "config": config,
                    }
                ]
            },
            "shields": [{"shield_id": "scan"}],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    return asyncio.run(build_local_stack(stack))["safety"]


def run(router: Any, *messages: dict[str, Any]) -> Any:
    request = RunShieldRequest(shield_id="scan", messages=list(messages))
    return asyncio.run(router.run_shield(request)).violation


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text, "stop_reason": "end_of_turn"}


@pytest.fixture()
def router(tmp_path) -> Any:
    return start(tmp_path)


def test_weak_hashing_found_by_a_regex_rule(router):
    v = run(router, user(f"```python\n{MD5}```"))
    assert v is not None and v.violation_level == "warn"
    assert v.metadata["violation_type"] == "insecure_code"
    [issue] = v.metadata["issues"]
    assert issue["cwe_id"] == "CWE-328" and issue["analyzer"] == "regex"
    assert issue["language"] == "python" and issue["line"] == 2
    assert "MD5" in v.user_message


def test_shell_injection_found_by_a_semgrep_rule(router):
    v = run(router, user("Run this:"), assistant(f"Sure:\n```py\n{SHELL}```\nDone."))
    assert v is not None
    [issue] = v.metadata["issues"]
    assert issue["pattern_id"] == "insecure-subprocess-using-shell"
    assert issue["analyzer"] == "semgrep" and issue["cwe_id"] == "CWE-78"
    assert issue["message_index"] == 1 and issue["line"] == 2
    assert v.metadata["patterns"] == ["insecure-subprocess-using-shell"]


def test_unfenced_text_is_scanned_as_every_language(router):
    v = run(router, user(PICKLE))
    assert v is not None
    assert "unsafe-pickle-use" in v.metadata["patterns"]


def test_safe_code_and_prose_pass(router):
    assert run(router, user(f"```python\n{SAFE}```"), assistant("The sum of two numbers.")) is None


def test_roles_not_configured_are_not_scanned(tmp_path):
    router = start(tmp_path, roles=["assistant"])
    assert run(router, user(SHELL)) is None
    assert run(router, user("hi"), assistant(SHELL)) is not None
    # System prompts are not scanned by default.
    assert run(start(tmp_path / "b"), {"role": "system", "content": SHELL}) is None


def test_min_severity_error_reports_only_blocking_issues(tmp_path):
    assert run(start(tmp_path, min_severity="error"), user(SHELL)) is None


def test_code_blocks():
    text = "a\n```python\nx = 1\n```\nb\n```js\ny()\n```\n```\nplain\n```"
    assert code_blocks(text) == [("python", "x = 1\n"), ("javascript", "y()\n"), (None, "plain\n")]
    assert code_blocks("no fences") == [(None, "no fences")]
    assert code_blocks("```brainfuck\n+++\n```") == [(None, "+++\n")]
