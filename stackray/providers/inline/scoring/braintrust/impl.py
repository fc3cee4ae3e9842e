"""`inline::braintrust`: autoevals' Factuality and RAGAS scorers over this stack's models.

The judge is `judge_model` of the config, or the `judge_model` of a request's (or a
registered function's) `llm_as_judge` params; the embedding model is `embedding_model`
of the config. Both are registered models reached through the Inference API (see
`client`). Each row's score is autoevals' score in [0, 1], with its metadata (the judge's
choice and rationale, extracted statements ...); a judge answer autoevals cannot read
(no tool call, arguments of the wrong shape) makes that row's score None with its
`error`, while a failing Inference call fails the request. Rows are scored concurrently,
at most `max_concurrency` model calls in flight.

A function registered with this provider is a builtin under another id
(`provider_scoring_fn_id` names it) with its own params.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Any

from autoevals import init as autoevals_init
from autoevals.string import EmbeddingSimilarity

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, NotFoundError
from stackray.api.models import ModelType
from stackray.api.scoring import (
    AggregationFunctionType,
    BasicScoringFnParams,
    LLMAsJudgeScoringFnParams,
    NumberType,
    ScoringFn,
    ScoringFnParams,
    ScoringResult,
)
from stackray.providers.inline.scoring.braintrust.client import InferenceCallFailed, StackModels
from stackray.providers.inline.scoring.braintrust.config import BraintrustScoringConfig
from stackray.providers.inline.scoring.braintrust.functions import (
    CONTEXT,
    FUNCTIONS,
    BraintrustFunction,
    Models,
)
from stackray.providers.utils.scoring import aggregate, check_rows
from stackray.runtime.errors import unwrap
from stackray.runtime.resolver import ProviderContext

DEFAULT_AGGREGATION = [AggregationFunctionType.average]


def _json(value: Any) -> Any:
    """autoevals' metadata as JSON: nested scores as their dicts, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json(dataclasses.asdict(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _json(value.item())
    return str(value)


class BraintrustScoringProvider:
    """Scores rows with autoevals' scorers, their model calls served by the stack."""

    def __init__(
        self, config: BraintrustScoringConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.inference = deps[Api.inference]
        self.context = context
        self.functions: dict[str, BraintrustFunction] = {}
        for f in FUNCTIONS:
            self.functions[f.identifier] = f
            self.functions[f.name] = f

    def builtin_functions(self) -> list[ScoringFn]:
        return [
            ScoringFn(
                identifier=f.identifier,
                description=f.description,
                provider_id=self.context.provider_id,
                provider_resource_id=f.name,
                return_type=NumberType(),
                params=BasicScoringFnParams(aggregation_functions=list(DEFAULT_AGGREGATION)),
            )
            for f in FUNCTIONS
        ]

    def _function(self, fn: ScoringFn, field: str) -> BraintrustFunction:
        name = fn.provider_resource_id or fn.identifier
        found = self.functions.get(name) or self.functions.get(fn.identifier)
        if found is None:
            raise BadRequestError(
                f"scoring function {fn.identifier!r}: the braintrust provider has no function "
                f"{name!r} (its functions: {', '.join(f.identifier for f in FUNCTIONS)})",
                field=field,
            )
        return found

    def _params(self, fn: ScoringFn, params: ScoringFnParams | None, field: str) -> ScoringFnParams:
        chosen = params or fn.params or BasicScoringFnParams()
        if isinstance(chosen, LLMAsJudgeScoringFnParams):
            if chosen.prompt_template or chosen.judge_score_regexes:
                raise BadRequestError(
                    f"scoring function {fn.identifier!r} has its own prompts: of the "
                    "'llm_as_judge' params it takes judge_model and aggregation_functions, "
                    "not prompt_template or judge_score_regexes",
                    field=f"{field}.prompt_template"
                    if chosen.prompt_template
                    else f"{field}.judge_score_regexes",
                )
            return chosen
        if not isinstance(chosen, BasicScoringFnParams):
            raise BadRequestError(
                f"scoring function {fn.identifier!r} takes params of type 'basic' "
                f"(aggregation_functions) or 'llm_as_judge' (judge_model), got "
                f"{chosen.type.value!r}",
                field=f"{field}.type",
            )
        return chosen

    async def _model(self, fn: ScoringFn, model_id: str, kind: ModelType, field: str) -> None:
        try:
            model = await self.inference.get_model(model_id)
        except Exception as exc:
            if isinstance(unwrap(exc), NotFoundError):
                raise BadRequestError(
                    f"scoring function {fn.identifier!r}: model {model_id!r} is not registered "
                    "with the Inference API",
                    field=field,
                ) from None
            raise
        if model.model_type != kind:
            raise BadRequestError(
                f"scoring function {fn.identifier!r}: model {model_id!r} is an "
                f"{model.model_type.value} model, not an {kind.value} model",
                field=field,
            )

    async def _models(
        self, fn: ScoringFn, function: BraintrustFunction, params: ScoringFnParams, field: str
    ) -> tuple[str | None, str | None]:
        judge = None
        if function.judge:
            if isinstance(params, LLMAsJudgeScoringFnParams):
                judge, judge_field = params.judge_model, f"{field}.judge_model"
            else:
                judge, judge_field = self.config.judge_model, "judge_model"
            if not judge:
                raise BadRequestError(
                    f"scoring function {fn.identifier!r} needs a judge model: set judge_model "
                    "in the braintrust provider's config, or pass params "
                    '{"type": "llm_as_judge", "judge_model": ...}',
                    field=f"{field}.judge_model",
                )
            await self._model(fn, judge, ModelType.llm, judge_field)
        embedding = None
        if function.embedding:
            embedding = self.config.embedding_model
            if not embedding:
                raise BadRequestError(
                    f"scoring function {fn.identifier!r} needs an embedding model: set "
                    "embedding_model in the braintrust provider's config",
                    field="embedding_model",
                )
            await self._model(fn, embedding, ModelType.embedding, "embedding_model")
        return judge, embedding

    async def register_scoring_function(self, fn: ScoringFn) -> ScoringFn:
        self._function(fn, "provider_scoring_fn_id")
        self._params(fn, None, "params")
        return fn

    @staticmethod
    def _texts(rows: list[dict[str, Any]], function: BraintrustFunction) -> list[dict[str, str]]:
        texts = []
        for i, row in enumerate(rows):
            values: dict[str, str] = {}
            for column in function.columns:
                value = row[column]
                if column == CONTEXT and isinstance(value, list):
                    if not all(isinstance(v, str) for v in value):
                        raise BadRequestError(
                            f"row {i}: column {column!r} of scoring function "
                            f"{function.identifier!r} is a list with non-text items; it must "
                            "be a text or a list of texts",
                            field=f"input_rows[{i}].{column}",
                        )
                    value = "\n".join(value)
                if not isinstance(value, str) or (column == CONTEXT and not value.strip()):
                    raise BadRequestError(
                        f"row {i}: column {column!r} of scoring function "
                        f"{function.identifier!r} must be "
                        + ("a non-empty text" if column == CONTEXT else "a text")
                        + f", got {type(value).__name__}",
                        field=f"input_rows[{i}].{column}",
                    )
                values[column] = value
            texts.append(values)
        return texts

    async def score(
        self, fn: ScoringFn, params: ScoringFnParams | None, rows: list[dict[str, Any]]
    ) -> ScoringResult:
        field = f"scoring_functions.{fn.identifier}"
        function = self._function(fn, "scoring_functions")
        chosen = self._params(fn, params, field)
        check_rows(rows, function.columns, fn.identifier, self.config.max_rows_per_request)
        texts = self._texts(rows, function)
        judge, embedding = await self._models(fn, function, chosen, field)

        stack = StackModels(self.inference, self.config.max_concurrency, self.config.max_tokens)
        client = stack.llm_client()
        models = Models(client=client, judge=judge, embedding=embedding)
        defaults: dict[str, str] = {}
        if judge:
            defaults["completion"] = judge
        if embedding:
            defaults["embedding"] = embedding

        async def one(row: dict[str, str]) -> dict[str, Any]:
            # Each row runs in its own task: autoevals' defaults (the scorers it builds
            # inside, such as answer-relevancy's embedding similarity, read them) are set
            # in that task's context only.
            autoevals_init(client=client, default_model=defaults or None)
            try:
                result = await function.evaluate(row, models)
            except InferenceCallFailed as failed:
                raise failed.cause from None
            except (ValueError, KeyError, IndexError, TypeError, ZeroDivisionError) as e:
                return {
                    "score": None,
                    "error": f"the judge's answer could not be scored ({type(e).__name__}: {e})",
                }
            score = result.score
            return {
                "score": float(score) if score is not None else None,
                "metadata": _json(result.metadata or {}),
            }

        try:
            score_rows = list(await asyncio.gather(*(one(row) for row in texts)))
        finally:
            _forget_embeddings(client)
        aggregations = chosen.aggregation_functions or (
            (fn.params.aggregation_functions if fn.params is not None else None)
            or DEFAULT_AGGREGATION
        )
        return ScoringResult(
            score_rows=score_rows, aggregated_results=aggregate(score_rows, aggregations)
        )


def _forget_embeddings(client: Any) -> None:
    """Drop the embeddings autoevals cached for this request's client (its cache is
    process-wide and would otherwise grow with every text a long-running stack scores)."""
    cache = EmbeddingSimilarity._CACHE
    with EmbeddingSimilarity._CACHE_LOCK:
        for key in [k for k in cache if k[3] == id(client)]:
            del cache[key]
