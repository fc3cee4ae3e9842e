"""Eval providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.eval,
        provider_type="inline::meta-reference",
        impl="stackray.providers.inline.eval.meta_reference.impl:MetaReferenceEval",
        config_class="stackray.providers.inline.eval.meta_reference.config:MetaReferenceEvalConfig",
        # Rows come from datasetio, answers from inference (or agents), scores from scoring.
        api_dependencies=(Api.inference, Api.datasetio, Api.scoring),
        optional_api_dependencies=(Api.agents,),
        description="Eval jobs: a benchmark's rows answered by a model or an agent and "
        "scored; persisted, cancellable, resumed after a restart.",
    ),
)
