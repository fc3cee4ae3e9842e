from __future__ import annotations

from pydantic import Field

from stackray.providers.utils.scoring import ScoringProviderConfig


class BraintrustScoringConfig(ScoringProviderConfig):
    """Settings of the `inline::braintrust` scoring provider."""

    openai_api_key: str | None = Field(
        default=None,
        description="Accepted as in Llama Stack configs and never used: the judge and "
        "embedding calls go to this stack's own models, through its Inference API.",
    )
    judge_model: str | None = Field(
        default=None,
        description="The registered llm that answers the scorers' classification and "
        "extraction prompts. A request's `llm_as_judge` params may name another one; with "
        "neither, the LLM-based functions are a 400.",
    )
    embedding_model: str | None = Field(
        default=None,
        description="The registered embedding model of the similarity-based functions "
        "(answer-similarity, answer-correctness, answer-relevancy, context-entity-recall); "
        "unset, they are a 400.",
    )
    max_concurrency: int = Field(
        default=8, ge=1, description="Model requests in flight at once for one score request."
    )
    max_tokens: int = Field(
        default=1024, ge=1, description="Most tokens the judge may answer with, per call."
    )
