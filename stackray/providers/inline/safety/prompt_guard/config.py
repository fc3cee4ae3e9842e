from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "assistant", "tool", "system"]
GuardType = Literal["jailbreak", "injection"]


def _default_roles() -> list[Role]:
    return ["user", "tool"]


class PromptGuardConfig(BaseModel):
    """Settings of `inline::prompt-guard`. A shield's params may set `model_dir`,
    `threshold` and `guard_type` for that shield."""

    model_config = ConfigDict(extra="forbid")

    model_dir: str | None = Field(
        default=None,
        description="Directory of the classifier in Prompt Guard's layout (config.json with labels "
        "BENIGN/INJECTION/JAILBREAK, weights, tokenizer files), e.g. a download of Llama-Prompt-Guard-2-86M.",
    )
    threshold: float = Field(
        default=0.9, ge=0.0, le=1.0, description="A score above this is a violation."
    )
    guard_type: GuardType = Field(
        default="jailbreak",
        description="'jailbreak': flag jailbreak attempts; 'injection': also flag instructions "
        "embedded in data (the INJECTION and JAILBREAK scores summed).",
    )
    roles: list[Role] = Field(
        default_factory=_default_roles,
        description="Roles of the messages scanned: by default the untrusted inputs (user text, tool results).",
    )
    device: str = Field(
        default="auto",
        description="'auto' (cuda when a GPU is visible), 'cpu', 'cuda', 'cuda:1' ...",
    )
    max_length: int = Field(
        default=512,
        ge=8,
        description="Tokens per classified window; longer texts are split into windows, any of which can flag.",
    )
