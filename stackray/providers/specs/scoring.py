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
    ProviderSpec(
        api=Api.scoring,
        provider_type="inline::braintrust",
        impl=f"{_INLINE}.braintrust.impl:BraintrustScoringProvider",
        config_class=f"{_INLINE}.braintrust.config:BraintrustScoringConfig",
        pip_packages=("autoevals", "scipy"),
        # autoevals' judge and embedding calls go to registered models, through the
        # Inference API.
        api_dependencies=(Api.inference,),
        description="autoevals' factuality and RAGAS scorers (answer correctness, "
        "relevancy, similarity, faithfulness, context entity recall, precision, recall, "
        "relevancy), their judge and embedding calls served by the stack's models.",
    ),
)
