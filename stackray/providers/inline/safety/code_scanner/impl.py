"""`inline::code-scanner`: insecure code in messages, found by Meta's CodeShield.

CodeShield's insecure code detector runs regex rules and, where they suggest it, semgrep
rules (the `semgrep-core` binary of the `semgrep` package) per language. Code fenced in
Markdown (```python ...```) is scanned as its language; other text is scanned as every
language CodeShield supports. Issues of severity `error` make an `error` violation (what
CodeShield recommends to block), lesser ones a `warn` violation.

The scan fails closed: a semgrep-core run that crashes, exits non-zero, times out, writes
output that is not its JSON report, or reports that it scanned nothing is a failed scan,
answered per `on_failure` (an `error` violation, or a 502), never a pass.

CodeShield's own runner starts semgrep-core with `asyncio.create_subprocess_exec`: under
uvloop (which Ray Serve replicas run) that is libuv's fork(), which runs the fork handlers
of the gRPC threads Ray keeps in every replica; measured in a safety replica, 3 of 20
scans died with SIGSEGV and, as CodeShield reads a dead scan as "no issues", passed. Here
semgrep-core is started by `subprocess` in a worker thread, which on Linux spawns with
vfork/exec and no fork handlers, whatever event loop runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackray.api.common import JsonValue, Message, interleaved_content_as_str
from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError, ProviderError
from stackray.api.safety import RunShieldResponse, SafetyViolation, Shield, ViolationLevel
from stackray.providers.inline.safety.code_scanner.config import CodeScannerConfig
from stackray.runtime.resolver import ProviderContext

logger = logging.getLogger("stackray.safety.code_scanner")

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)

# Fence tags -> CodeShield language names.
_TAGS = {
    "c": "c",
    "h": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "cc": "cpp",
    "cs": "csharp",
    "csharp": "csharp",
    "c#": "csharp",
    "java": "java",
    "js": "javascript",
    "javascript": "javascript",
    "jsx": "javascript",
    "ts": "javascript",
    "typescript": "javascript",
    "php": "php",
    "py": "python",
    "python": "python",
    "python3": "python",
    "rs": "rust",
    "rust": "rust",
    "kotlin": "kotlin",
    "kt": "kotlin",
    "swift": "swift",
    "ruby": "ruby",
    "rb": "ruby",
    "xml": "xml",
}

_SEVERITY_RANK = {"error": 3, "warning": 2, "advice": 1, "disabled": 0}

# semgrep-core reports a target it could not parse as a `warn`-level error and still
# matches what it parsed; these mean rules did not run to the end.
_INCOMPLETE_ERRORS = ("timeout", "out of memory", "outofmemory", "fatal")


def code_blocks(text: str) -> list[tuple[str | None, str]]:
    """(language or None, code) pieces of a message: its fenced blocks, or the whole text."""
    blocks = [(_TAGS.get(tag.lower()), code) for tag, code in _FENCE.findall(text)]
    return blocks or [(None, text)]


class ScanFailed(Exception):
    """A scan that did not finish: what it found is not known."""


@dataclass(frozen=True)
class Finding:
    """One CodeShield issue, as the shield reports it."""

    language: str
    pattern_id: str | None
    description: str
    cwe_id: str | None
    severity: str
    line: int | None
    analyzer: str


class CodeScannerSafetyProvider:
    def __init__(
        self, config: CodeScannerConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.context = context
        # Scans block on semgrep-core: a pool of their own bounds how many run at once.
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_parallel_scans, thread_name_prefix="code-scanner"
        )

    async def initialize(self) -> None:
        try:
            from codeshield.insecure_code_detector import (
                insecure_code_detector,
                insecure_patterns,
                languages,
                oss,
            )
            from codeshield.insecure_code_detector.analyzers import Analyzer
            from codeshield.insecure_code_detector.usecases import UseCase
        except Exception as e:  # ImportError, or codeshield's own error finding semgrep-core
            raise ConfigError(
                f"inline::code-scanner needs Meta's codeshield package and semgrep's semgrep-core "
                f"(pip install --no-deps codeshield semgrep: see docs/safety.md): {e}"
            ) from None
        binary = (
            Path(self.config.semgrep_core)
            if self.config.semgrep_core
            else oss._get_semgrep_core_path()
        )
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise ConfigError(
                f"provider {self.context.provider_id!r}: semgrep_core {str(binary)!r} "
                "is not an executable file"
            )
        self._binary = str(binary)
        self._detector = insecure_code_detector
        self._patterns = insecure_patterns
        self._languages = languages
        self._oss = oss
        self._analyzer = Analyzer
        self._usecase = UseCase.CODESHIELD

    async def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def register_shield(self, shield: Shield) -> Shield:
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def _scan(self, language: str | None, code: str) -> list[Finding | ScanFailed]:
        """What scanning `code` found: findings, and a `ScanFailed` per language whose scan
        did not finish."""
        Language = self._languages.Language
        targets = [Language(language)] if language else self._languages.get_supported_languages()
        loop = asyncio.get_running_loop()
        found = await asyncio.gather(
            *(loop.run_in_executor(self._pool, self._analyze, lang, code) for lang in targets),
            return_exceptions=True,
        )
        out: list[Finding | ScanFailed] = []
        for lang, result in zip(targets, found, strict=True):
            if isinstance(result, ScanFailed):
                out.append(result)
            elif isinstance(result, BaseException):
                out.append(ScanFailed(f"{lang.value}: {type(result).__name__}: {result}"))
            else:
                out.extend(result)
        return out

    def _analyze(self, language: Any, code: str) -> list[Finding]:
        """CodeShield's analysis of one language (runs in a pool thread): its regex rules,
        and only when they find nothing and its prescan suggests it, its semgrep rules."""
        icd = self._detector
        analyzers = icd.LANGUAGE_ANALYZER_MAP.get(language, [])
        context = icd.CodeContext(language, None, None, Path())
        if self._oss.ENABLE_REGEX_ANALYZER and self._analyzer.REGEX in analyzers:
            issues = icd._regex_analyze(code, context, self._usecase)
            if issues:  # CodeShield's fast mode: the first analyzer that finds something
                return [_finding(language.value, issue) for issue in issues]
        if not self._oss.ENABLE_SEMGREP or self._analyzer.SEMGREP not in analyzers:
            return []
        if not icd._is_semgrep_scan_recommended(code, context, self._usecase):
            return []
        return self._semgrep(language, code)

    def _semgrep(self, language: Any, code: str) -> list[Finding]:
        rules_root = self._oss.SEMGREP_RULE_REPO_PATH
        rules = rules_root / "_generated_" / f"{language.value}_{self._usecase.value}.json"
        if not rules.exists():
            rules = rules_root / language.value
        target = "code" + self._languages.get_file_extension(language)
        # semgrep-core is a multi-call binary: named `osemgrep`, it is semgrep's CLI. The
        # target is given relative to the working directory: with an absolute path and
        # `--project-root /` (CodeShield's way) current semgrep scans no file at all.
        argv = ["osemgrep", *self._oss.SEMGREP_COMMAND[1:], str(rules), target]
        with tempfile.TemporaryDirectory(prefix="stackray-codescan-") as tmp:
            (Path(tmp) / target).write_text(code)
            done = self._run(argv, cwd=tmp, language=language.value)
        return _parse_report(language.value, target, done)

    def _run(self, argv: list[str], *, cwd: str, language: str) -> subprocess.CompletedProcess:
        """semgrep-core, run to its end or killed (with anything it started) at the timeout."""
        try:
            process = subprocess.Popen(
                argv,
                executable=self._binary,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as e:
            raise ScanFailed(f"{language}: semgrep-core could not start: {e}") from None
        try:
            stdout, stderr = process.communicate(timeout=self.config.timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise ScanFailed(
                f"{language}: semgrep-core did not finish in {self.config.timeout_s:g} s"
            ) from None
        return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse:
        floor = _SEVERITY_RANK[self.config.min_severity]
        issues: list[dict[str, JsonValue]] = []
        failures: list[dict[str, JsonValue]] = []
        for index, message in enumerate(messages):
            if message.role not in self.config.roles:
                continue
            for language, code in code_blocks(interleaved_content_as_str(message.content)):
                for result in await self._scan(language, code):
                    if isinstance(result, ScanFailed):
                        logger.warning("code scan of message %d failed: %s", index, result)
                        failures.append({"message_index": index, "reason": str(result)})
                        continue
                    if _SEVERITY_RANK.get(result.severity, 0) < floor:
                        continue
                    issues.append({"message_index": index, **result.__dict__})
        if failures and not issues and self.config.on_failure == "error":
            raise ProviderError(
                "the code scan did not finish: " + "; ".join(str(f["reason"]) for f in failures),
                provider_id=self.context.provider_id,
            )
        if not issues and not failures:
            return RunShieldResponse(violation=None)
        return RunShieldResponse(violation=_violation(issues, failures))


def _violation(
    issues: list[dict[str, JsonValue]], failures: list[dict[str, JsonValue]]
) -> SafetyViolation:
    """Issues found make an `insecure_code` violation (`error` when one is of severity
    error); a scan that did not finish blocks (`error`, `scan_failed`)."""
    blocking = bool(failures) or any(i["severity"] == "error" for i in issues)
    parts = []
    types = []
    if issues:
        found = sorted({str(i["description"]).strip().splitlines()[0] for i in issues})
        parts.append("Insecure code found: " + "; ".join(d.rstrip(".") for d in found) + ".")
        types.append("insecure_code")
    if failures:
        parts.append("The code scanner could not finish its scan, so the content is blocked.")
        types.append("scan_failed")
    metadata: dict[str, JsonValue] = {
        "violation_type": ",".join(types),
        "patterns": sorted({str(i["pattern_id"] or i["cwe_id"]) for i in issues}),
        "issues": issues,  # type: ignore[dict-item]
    }
    if failures:
        metadata["scan_failures"] = failures  # type: ignore[assignment]
    return SafetyViolation(
        violation_level=ViolationLevel.error if blocking else ViolationLevel.warn,
        user_message=" ".join(parts),
        metadata=metadata,
    )


def _finding(language: str, issue: Any) -> Finding:
    # Regex issues carry a Severity enum, semgrep's a string ('WARNING').
    severity = str(getattr(issue.severity, "value", issue.severity)).lower()
    return Finding(
        language=language,
        pattern_id=_rule_name(issue.pattern_id),
        description=issue.description,
        cwe_id=issue.cwe_id or None,
        severity=severity,
        line=issue.line,
        analyzer=str(issue.analyzer) if issue.analyzer else "regex",
    )


def _parse_report(language: str, target: str, done: subprocess.CompletedProcess) -> list[Finding]:
    """The findings of semgrep's JSON report; anything but a complete report of the target
    is a failed scan."""
    stderr = done.stderr.decode("utf-8", "replace").strip()[-300:]
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = str(-done.returncode)
        raise ScanFailed(f"{language}: semgrep-core was killed by {name}")
    if done.returncode != 0:
        raise ScanFailed(
            f"{language}: semgrep-core exited with status {done.returncode}"
            + (f": {stderr}" if stderr else "")
        )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        head = done.stdout[:120].decode("utf-8", "replace")
        raise ScanFailed(f"{language}: semgrep-core's output is not its JSON report: {head!r}")
    paths = report.get("paths")
    scanned = paths.get("scanned") if isinstance(paths, dict) else None
    if not isinstance(scanned, list) or target not in scanned:
        raise ScanFailed(f"{language}: semgrep-core did not scan the code")
    for error in report.get("errors") or []:
        kind = str(error.get("type", "")).lower() if isinstance(error, dict) else ""
        level = error.get("level") if isinstance(error, dict) else "error"
        if level == "error" or any(k in kind for k in _INCOMPLETE_ERRORS):
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ScanFailed(f"{language}: semgrep-core: {str(message)[:300]}")
    findings = []
    for result in report["results"]:
        extra = result.get("extra", {})
        findings.append(
            Finding(
                language=language,
                pattern_id=_rule_name(result.get("check_id")),
                description=str(extra.get("message", "")),
                cwe_id=extra.get("metadata", {}).get("cwe_id") or None,
                severity=str(extra.get("severity", "")).lower(),
                line=result.get("start", {}).get("line"),
                analyzer="semgrep",
            )
        )
    return findings


def _rule_name(pattern_id: str | None) -> str | None:
    """A semgrep rule id is prefixed with its rules file's path, dotted, relative to the
    working directory (``.venv.lib...semgrep._generated_.unsafe-pickle-use``): keep the
    rule's own name."""
    if pattern_id and "." in pattern_id and "semgrep" in pattern_id:
        return pattern_id.rsplit(".", 1)[-1]
    return pattern_id
