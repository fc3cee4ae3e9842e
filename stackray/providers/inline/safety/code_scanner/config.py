from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "assistant", "tool", "system"]


def _default_roles() -> list[Role]:
    return ["user", "assistant", "tool"]


class CodeScannerConfig(BaseModel):
    """Settings of `inline::code-scanner` (Meta's CodeShield)."""

    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(
        default_factory=_default_roles,
        description="Roles of the messages whose code is scanned.",
    )
    min_severity: Literal["error", "warning", "advice"] = Field(
        default="warning",
        description="Issues below this severity are not reported ('error' blocks only what CodeShield would block).",
    )
    on_failure: Literal["block", "error"] = Field(
        default="block",
        description="What a scan that could not finish (the scanner crashed, exited non-zero, timed out or "
        "wrote output that does not parse) answers: 'block', an `error` violation saying so; 'error', a 502 "
        "to the caller. Never a pass.",
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds one semgrep-core run may take; past it the process is killed and the scan failed.",
    )
    max_parallel_scans: int = Field(
        default=4,
        ge=1,
        description="semgrep-core processes one replica runs at once; more scans wait their turn.",
    )
    semgrep_core: str | None = Field(
        default=None,
        description="Path of the semgrep-core binary; default: the one the `semgrep` package ships.",
    )
