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
