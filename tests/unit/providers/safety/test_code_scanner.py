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


# The request of a scanner that failed open: three findings, all by semgrep rules (so
# every scan runs semgrep-core).
UNSAFE = (
    "Clean up like this:\n```python\nimport os, pickle\n\n"
    "def handle(path, data, user_input):\n"
    '    os.system("rm -rf " + path)\n'
    "    obj = pickle.loads(data)\n"
    "    return eval(user_input), obj\n```\n"
)
UNSAFE_PATTERNS = ["insecure-eval-use", "insecure-os-system-use", "unsafe-pickle-use"]


def test_the_same_unsafe_request_under_concurrency_is_always_a_violation(tmp_path):
    """40 identical scans, 8 at a time, on uvloop (the loop Ray Serve replicas run, whose
    own subprocess spawning forks): every answer names the three findings."""
    import uvloop

    router = start(tmp_path)
    request = RunShieldRequest(shield_id="scan", messages=[user(UNSAFE)])

    async def scans() -> list[Any]:
        gate = asyncio.Semaphore(8)

        async def one() -> Any:
            async with gate:
                return (await router.run_shield(request)).violation

        return await asyncio.gather(*(one() for _ in range(40)))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answers = runner.run(scans())
    assert len(answers) == 40
    for v in answers:
        assert v is not None
        assert v.metadata["patterns"] == UNSAFE_PATTERNS
        assert v.metadata["violation_type"] == "insecure_code"


def fake_semgrep(tmp_path, script: str) -> str:
    """A stand-in semgrep-core: a shell script in place of the binary."""
    path = tmp_path / "semgrep-core"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


FAILING_SCANNERS = {
    "exits non-zero": ("echo 'rules did not load' >&2; exit 2", "exited with status 2"),
    "crashes": ("kill -SEGV $$", "killed by SIGSEGV"),
    "writes no report": ("echo 'Fatal error: exception Stack_overflow'", "not its JSON report"),
    "scans nothing": (
        """echo '{"results": [], "errors": [], "paths": {"scanned": []}}'""",
        "did not scan the code",
    ),
    "reports a fatal error": (
        """echo '{"results": [], "errors": [{"level": "error", "type": "Rule parse error",
        "message": "bad rule"}], "paths": {"scanned": ["code.py"]}}'""",
        "bad rule",
    ),
    "hangs": ("exec sleep 30", "did not finish in 0.5 s"),
}


@pytest.mark.parametrize("case", FAILING_SCANNERS)
def test_a_scan_that_fails_blocks(tmp_path, case):
    script, reason = FAILING_SCANNERS[case]
    router = start(tmp_path, semgrep_core=fake_semgrep(tmp_path, script), timeout_s=0.5)
    v = run(router, user(UNSAFE))
    assert v is not None and v.violation_level == "error"
    assert v.metadata["violation_type"] == "scan_failed"
    [failure] = v.metadata["scan_failures"]
    assert failure["message_index"] == 0
    assert failure["reason"].startswith("python: ") and reason in failure["reason"]
    assert "could not finish its scan" in v.user_message


def test_a_scan_that_fails_is_a_502_with_on_failure_error(tmp_path):
    from stackray.api.errors import ProviderError

    router = start(
        tmp_path, semgrep_core=fake_semgrep(tmp_path, "kill -SEGV $$"), on_failure="error"
    )
    with pytest.raises(ProviderError) as caught:
        run(router, user(UNSAFE))
    assert caught.value.status_code == 502
    assert "killed by SIGSEGV" in caught.value.message and "code-scanner" in caught.value.message


def test_what_regex_rules_find_is_reported_when_semgrep_is_not_needed(tmp_path):
    # A failing semgrep-core is not run for code its regex rules already flag.
    router = start(tmp_path, semgrep_core=fake_semgrep(tmp_path, "exit 1"))
    v = run(router, user(f"```python\n{MD5}```"))
    assert v is not None and v.metadata["violation_type"] == "insecure_code"
    assert "scan_failures" not in v.metadata


def test_a_failure_beside_findings_blocks_and_reports_both(tmp_path):
    # Unfenced text is scanned as every language: the semgrep run of each fails, the
    # language-agnostic regex rules still find the MD5.
    router = start(tmp_path, semgrep_core=fake_semgrep(tmp_path, "exit 3"))
    v = run(router, user(MD5 + "\n" + PICKLE))
    assert v is not None and v.violation_level == "error"
    assert v.metadata["violation_type"] == "insecure_code,scan_failed"
    assert v.metadata["issues"] and v.metadata["scan_failures"]


def test_a_semgrep_core_that_is_not_there_is_refused_at_start(tmp_path):
    from stackray.api.errors import ConfigError

    with pytest.raises(ConfigError, match="semgrep_core .*nowhere.* is not an executable file"):
        start(tmp_path, semgrep_core=str(tmp_path / "nowhere"))


def test_config_is_checked(tmp_path):
    from stackray.api.errors import ConfigError

    for field, value in (("on_failure", "pass"), ("timeout_s", 0), ("max_parallel_scans", 0)):
        with pytest.raises(ConfigError, match=rf"providers\.safety\[0\]\.config\.{field}"):
            start(tmp_path, **{field: value})
