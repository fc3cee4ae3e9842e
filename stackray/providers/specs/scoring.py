"""Scoring providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

_INLINE = "stackray.providers.inline.scoring"

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.scoring,
        provider_type="inline::basic",
        impl=f"{_INLINE}.basic.impl:BasicScoringProvider",
        config_class=f"{_INLINE}.basic.config:BasicScoringConfig",
        pip_packages=("langdetect",),
        description="Scores computed from the rows: equality, subset_of, regex parsers "
        "(multiple choice, math), docvqa, ifeval, bfcl.",
    ),
    ProviderSpec(
        api=Api.scoring,
        provider_type="inline::llm-as-judge",
        impl=f"{_INLINE}.llm_as_judge.impl:LlmAsJudgeScoringProvider",
        config_class=f"{_INLINE}.llm_as_judge.config:LlmAsJudgeScoringConfig",
        # The judge is any registered llm, reached through the Inference API.
        api_dependencies=(Api.inference,),
        description="Scores given by a judge model (any registered llm) through the Inference API.",
    ),
)
