"""ScoringRouter: the scoring function registry, and scoring rows with them.

It owns the scoring-functions API (register/list/get; the registry is shared by all
replicas through the metadata store; each provider's builtin functions are registered at
start), routes each function of a score request to its provider, and for `score_batch`
reads the dataset's rows through the datasetio API and, with `save_results_dataset`,
registers the scored rows as a new dataset.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.api.scoring import (
    ListScoringFunctionsResponse,
    RegisterScoringFunctionRequest,
    ScoreBatchRequest,
    ScoreBatchResponse,
    ScoreRequest,
    ScoreResponse,
    ScoringFn,
    ScoringFnParams,
    ScoringResult,
)
from stackray.runtime.access_control import Action
from stackray.runtime.resources import ResourceRegistry

SCORING_FUNCTIONS = "scoring_functions"


class ScoringRouter:
    """Routes scoring by function id; serves the scoring-functions API."""

    def __init__(
        self, providers: dict[str, Any], registry: ResourceRegistry, datasetio: Any | None = None
    ) -> None:
        self.providers = providers
        self.registry = registry
        self.datasetio = datasetio

    async def health(self) -> None:
        self.registry.store.get("health")

    # ---- scoring functions --------------------------------------------------------------

    def _provider_for_new_function(self, provider_id: str | None, fn_id: str) -> str:
        if provider_id is not None:
            if provider_id not in self.providers:
                raise BadRequestError(
                    f"no scoring provider {provider_id!r} (providers: "
                    f"{', '.join(sorted(self.providers)) or 'none'})",
                    field="provider_id",
                )
            return provider_id
        if len(self.providers) == 1:
            return next(iter(self.providers))
        raise BadRequestError(
            f"provider_id is required to register scoring function {fn_id!r}: this stack has "
            + (
                f"several scoring providers ({', '.join(sorted(self.providers))})"
                if self.providers
                else "no scoring provider"
            ),
            field="provider_id",
        )

    async def register_builtins(self) -> None:
        """Each provider's builtin functions, as the provider defines them now."""
        for provider in self.providers.values():
            for fn in provider.builtin_functions():
                self.registry.put(SCORING_FUNCTIONS, fn.identifier, fn)

    async def register_scoring_function(self, request: RegisterScoringFunctionRequest) -> None:
        provider_id = self._provider_for_new_function(request.provider_id, request.scoring_fn_id)
        fn = ScoringFn(
            identifier=request.scoring_fn_id,
            description=request.description,
            return_type=request.return_type,
            provider_id=provider_id,
            provider_resource_id=request.provider_scoring_fn_id or request.scoring_fn_id,
            params=request.params,
        )
        existing = self.registry.get_for_create(ScoringFn, SCORING_FUNCTIONS, fn.identifier)
        if existing is not None:
            if existing.model_dump() == fn.model_dump():
                return
            raise ConflictError(
                f"scoring function {fn.identifier!r} is already registered (provider "
                f"{existing.provider_id!r}) with other settings",
                field="scoring_fn_id",
            )
        self.registry.require(Action.create, SCORING_FUNCTIONS, fn.identifier)
        registered: ScoringFn = await self.providers[provider_id].register_scoring_function(fn)
        if not self.registry.put_if_absent(SCORING_FUNCTIONS, registered.identifier, registered):
            await self.register_scoring_function(request)

    def list_scoring_functions(self) -> ListScoringFunctionsResponse:
        return ListScoringFunctionsResponse(data=self.registry.list(ScoringFn, SCORING_FUNCTIONS))

    def get_scoring_function(self, scoring_fn_id: str, field: str = "scoring_fn_id") -> ScoringFn:
        fn = self.registry.get(ScoringFn, SCORING_FUNCTIONS, scoring_fn_id)
        if fn is None:
            raise NotFoundError(
                f"scoring function {scoring_fn_id!r} not found; GET /v1/scoring-functions "
                "lists the registered functions",
                field=field,
            )
        return fn

    # ---- scoring ------------------------------------------------------------------------

    async def _score(
        self, rows: list[dict[str, Any]], functions: dict[str, ScoringFnParams | None]
    ) -> dict[str, ScoringResult]:
        if not functions:
            raise BadRequestError(
                "scoring_functions must name at least one function", field="scoring_functions"
            )
        routed = []
        for fn_id, params in functions.items():
            fn = self.get_scoring_function(fn_id, field=f"scoring_functions.{fn_id}")
            provider = self.providers.get(fn.provider_id)
            if provider is None:
                raise BadRequestError(
                    f"scoring function {fn_id!r} belongs to provider {fn.provider_id!r}, which "
                    "this stack does not run",
                    field=f"scoring_functions.{fn_id}",
                )
            routed.append((fn_id, fn, params, provider))
        results = await asyncio.gather(
            *(provider.score(fn, params, rows) for _, fn, params, provider in routed)
        )
        return {fn_id: result for (fn_id, *_), result in zip(routed, results, strict=True)}

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        return ScoreResponse(
            results=await self._score(request.input_rows, request.scoring_functions)
        )

    async def score_batch(self, request: ScoreBatchRequest) -> ScoreBatchResponse:
        if self.datasetio is None:
            raise BadRequestError(
                "score-batch reads datasets through the datasetio API, which this stack does "
                "not serve (add 'datasetio' to apis)",
                field="dataset_id",
            )
        dataset = await self.datasetio.get_dataset(request.dataset_id)
        page = await self.datasetio.iterrows(request.dataset_id, 0, -1)
        rows: list[dict[str, Any]] = page.data
        results = await self._score(rows, request.scoring_functions)
        saved = None
        if request.save_results_dataset:
            saved = await self._save(dataset, rows, results)
        return ScoreBatchResponse(dataset_id=saved, results=results)

    async def _save(
        self, dataset: Any, rows: list[dict[str, Any]], results: dict[str, ScoringResult]
    ) -> str:
        """Register the dataset's rows, each with its score rows under the function ids,
        as a new dataset of the same purpose; its id."""
        from stackray.api.datasetio import RegisterDatasetRequest, RowsDataSource

        scored = []
        for i, row in enumerate(rows):
            out = dict(row)
            for fn_id, result in results.items():
                out[fn_id] = result.score_rows[i]
            scored.append(out)
        dataset_id = f"{dataset.identifier}-scores-{uuid.uuid4().hex[:12]}"
        assert self.datasetio is not None
        await self.datasetio.register_dataset(
            RegisterDatasetRequest(
                dataset_id=dataset_id,
                purpose=dataset.purpose,
                source=RowsDataSource(rows=scored),
                metadata={
                    "scored_dataset_id": dataset.identifier,
                    "scoring_functions": list(results),
                    "aggregated_results": {k: r.aggregated_results for k, r in results.items()},
                },
            )
        )
        return dataset_id


# ---- building the router ----------------------------------------------------------------


async def build_router(
    stack: Any, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> ScoringRouter:
    """The scoring router (`ROUTERS[Api.scoring]`): its providers' builtin functions and
    the run config's `scoring_fns` registered (idempotent: every replica does it)."""
    from pydantic import ValidationError

    from stackray.api.errors import ConfigError
    from stackray.runtime.resolver import build_providers
    from stackray.runtime.resources import open_registry

    providers = await build_providers(stack, Api.scoring, deps, servers)
    router = ScoringRouter(providers, open_registry(stack), deps.get(Api.datasetio))
    await router.register_builtins()
    for i, entry in enumerate(stack.scoring_fns):
        try:
            request = RegisterScoringFunctionRequest.model_validate(
                {
                    "scoring_fn_id": entry.scoring_fn_id,
                    "description": entry.description,
                    "return_type": entry.return_type,
                    "provider_id": entry.provider_id,
                    "provider_scoring_fn_id": entry.provider_scoring_fn_id,
                    "params": entry.params,
                }
            )
        except ValidationError as e:
            raise ConfigError(f"scoring_fns[{i}] ({entry.scoring_fn_id}): {e}") from None
        await router.register_scoring_function(request)
    return router
