"""`inline::code-scanner`: insecure code in messages, found by Meta's CodeShield.

CodeShield's insecure code detector runs regex rules and, where they suggest it, semgrep
rules (the `semgrep-core` binary of the `semgrep` package) per language. Code fenced in
Markdown (```python ...```) is scanned as its language; other text is scanned as every
language CodeShield supports. Issues of severity `error` make an `error` violation (what
CodeShield recommends to block), lesser ones a `warn` violation.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from stackray.api.common import JsonValue, Message, interleaved_content_as_str
from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.api.safety import RunShieldResponse, SafetyViolation, Shield, ViolationLevel
from stackray.providers.inline.safety.code_scanner.config import CodeScannerConfig
from stackray.runtime.resolver import ProviderContext

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


def code_blocks(text: str) -> list[tuple[str | None, str]]:
    """(language or None, code) pieces of a message: its fenced blocks, or the whole text."""
    blocks = [(_TAGS.get(tag.lower()), code) for tag, code in _FENCE.findall(text)]
    return blocks or [(None, text)]


class CodeScannerSafetyProvider:
    def __init__(
        self, config: CodeScannerConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.context = context

    async def initialize(self) -> None:
        try:
            from codeshield.insecure_code_detector import insecure_code_detector, languages
            from codeshield.insecure_code_detector.usecases import UseCase
        except Exception as e:  # ImportError, or codeshield's own error finding semgrep-core
            raise ConfigError(
                f"inline::code-scanner needs Meta's codeshield package and semgrep's semgrep-core "
                f"(pip install --no-deps codeshield semgrep: see docs/safety.md): {e}"
            ) from None
        self._detector = insecure_code_detector
        self._languages = languages
        self._usecase = UseCase.CODESHIELD

    async def register_shield(self, shield: Shield) -> Shield:
        return shield

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def _scan(self, language: str | None, code: str) -> list[tuple[str, Any]]:
        """(language, CodeShield issue) pairs found in `code`."""
        Language = self._languages.Language
        targets = [Language(language)] if language else self._languages.get_supported_languages()
        found = await asyncio.gather(*(self._analyze(lang, code) for lang in targets))
        return [
            (lang.value, issue)
            for lang, issues in zip(targets, found, strict=True)
            for issue in issues
        ]

    async def _analyze(self, language: Any, code: str) -> list[Any]:
        # CodeShield writes the code to an absolute temp path and runs semgrep-core with
        # `--project-root /`, for which current semgrep scans no file at all (it reports the
        # root as not containing the target). Given a path relative to the working
        # directory, it runs semgrep without a project root, which scans it.
        extension = self._languages.get_file_extension(language)
        with tempfile.TemporaryDirectory(prefix="stackray-codescan-") as tmp:
            target = Path(tmp) / f"code{extension}"
            target.write_text(code)
            relative = Path(os.path.relpath(target))
            return list(
                await self._detector.analyze(language, code, path=relative, usecase=self._usecase)
            )

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse:
        floor = _SEVERITY_RANK[self.config.min_severity]
        issues: list[dict[str, JsonValue]] = []
        for index, message in enumerate(messages):
            if message.role not in self.config.roles:
                continue
            for language, code in code_blocks(interleaved_content_as_str(message.content)):
                for lang, issue in await self._scan(language, code):
                    # Regex issues carry a Severity enum, semgrep's a string ('WARNING').
                    severity = str(getattr(issue.severity, "value", issue.severity)).lower()
                    if _SEVERITY_RANK.get(severity, 0) < floor:
                        continue
                    issues.append(
                        {
                            "message_index": index,
                            "language": lang,
                            "pattern_id": _rule_name(issue.pattern_id),
                            "description": issue.description,
                            "cwe_id": issue.cwe_id,
                            "severity": severity,
                            "line": issue.line,
                            "analyzer": str(issue.analyzer) if issue.analyzer else None,
                        }
                    )
        if not issues:
            return RunShieldResponse(violation=None)
        blocking = any(i["severity"] == "error" for i in issues)
        found = sorted({str(i["description"]).strip().splitlines()[0] for i in issues})
        return RunShieldResponse(
            violation=SafetyViolation(
                violation_level=ViolationLevel.error if blocking else ViolationLevel.warn,
                user_message="Insecure code found: " + "; ".join(found),
                metadata={
                    "violation_type": "insecure_code",
                    "patterns": sorted({str(i["pattern_id"] or i["cwe_id"]) for i in issues}),
                    "issues": issues,  # type: ignore[dict-item]
                },
            )
        )


def _rule_name(pattern_id: str | None) -> str | None:
    """A semgrep rule id is prefixed with its rules file's path, dotted, relative to the
    working directory (``.venv.lib...semgrep._generated_.unsafe-pickle-use``): keep the
    rule's own name."""
    if pattern_id and "." in pattern_id and "semgrep" in pattern_id:
        return pattern_id.rsplit(".", 1)[-1]
    return pattern_id
