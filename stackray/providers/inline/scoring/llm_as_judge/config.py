from __future__ import annotations

from pydantic import Field

from stackray.providers.utils.scoring import ScoringProviderConfig


class LlmAsJudgeScoringConfig(ScoringProviderConfig):
    """Settings of the `inline::llm-as-judge` scoring provider."""

    judge_model: str | None = Field(
        default=None,
        description="The judge of the builtin functions (llm-as-judge::base, "
        "llm-as-judge::405b-simpleqa): a registered llm. Unset: Llama Stack's "
        "meta-llama/Llama-3.1-405B-Instruct, which the stack must then serve.",
    )
    max_concurrency: int = Field(
        default=8, ge=1, description="Judge requests in flight at once for one score request."
    )
    max_tokens: int = Field(
        default=512, ge=1, description="Most tokens the judge may answer with, per row."
    )
