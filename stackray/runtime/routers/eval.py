"""EvalRouter: the benchmark registry, and eval jobs and row evaluations of a benchmark.

It owns the benchmarks API (register/list/get; the registry is shared by all replicas
through the metadata store) and routes jobs to the benchmark's provider. Registering a
benchmark checks its dataset and scoring functions exist (a 404 naming the missing one).
"""

from __future__ import annotations

from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.api.eval import (
    Benchmark,
    EvaluateResponse,
    EvaluateRowsRequest,
    Job,
    ListBenchmarksResponse,
    RegisterBenchmarkRequest,
    RunEvalRequest,
)
from stackray.runtime.access_control import Action
from stackray.runtime.resources import ResourceRegistry

BENCHMARKS = "benchmarks"


class EvalRouter:
    """Routes eval calls by benchmark id; serves the benchmarks API."""

    def __init__(
        self,
        providers: dict[str, Any],
        registry: ResourceRegistry,
        datasetio: Any,
        scoring: Any,
    ) -> None:
        self.providers = providers
        self.registry = registry
        self.datasetio = datasetio
        self.scoring = scoring

    async def health(self) -> None:
        self.registry.store.get("health")

    # ---- benchmarks ---------------------------------------------------------------------

    async def register_benchmark(self, request: RegisterBenchmarkRequest) -> None:
        provider_id = request.provider_id
        if provider_id is None:
            if len(self.providers) != 1:
                raise BadRequestError(
                    "provider_id is required: this stack has "
                    + (
                        f"eval providers {', '.join(sorted(self.providers))}"
                        if self.providers
                        else "no eval provider"
                    ),
                    field="provider_id",
                )
            provider_id = next(iter(self.providers))
        elif provider_id not in self.providers:
            raise BadRequestError(
                f"no eval provider {provider_id!r} (providers: {', '.join(sorted(self.providers))})",
                field="provider_id",
            )
        await self.datasetio.get_dataset(request.dataset_id)
        if not request.scoring_functions:
            raise BadRequestError(
                "scoring_functions must name at least one function", field="scoring_functions"
            )
        for fn_id in request.scoring_functions:
            await self.scoring.get_scoring_function(fn_id)
        benchmark = Benchmark(
            identifier=request.benchmark_id,
            provider_resource_id=request.provider_benchmark_id or request.benchmark_id,
            provider_id=provider_id,
            dataset_id=request.dataset_id,
            scoring_functions=request.scoring_functions,
            metadata=dict(request.metadata or {}),
        )
        existing = self.registry.get_for_create(Benchmark, BENCHMARKS, benchmark.identifier)
        if existing is not None:
            if existing.model_dump() == benchmark.model_dump():
                return
            raise ConflictError(
                f"benchmark {benchmark.identifier!r} is already registered with other settings",
                field="benchmark_id",
            )
        self.registry.require(Action.create, BENCHMARKS, benchmark.identifier)
        registered = await self.providers[provider_id].register_benchmark(benchmark)
        if not self.registry.put_if_absent(BENCHMARKS, registered.identifier, registered):
            await self.register_benchmark(request)

    def list_benchmarks(self) -> ListBenchmarksResponse:
        return ListBenchmarksResponse(data=self.registry.list(Benchmark, BENCHMARKS))

    def get_benchmark(self, benchmark_id: str) -> Benchmark:
        benchmark = self.registry.get(Benchmark, BENCHMARKS, benchmark_id)
        if benchmark is None:
            raise NotFoundError(
                f"benchmark {benchmark_id!r} not found; GET /v1/eval/benchmarks lists them",
                field="benchmark_id",
            )
        return benchmark

    def _route(self, benchmark_id: str) -> tuple[Benchmark, Any]:
        benchmark = self.get_benchmark(benchmark_id)
        provider = self.providers.get(benchmark.provider_id)
        if provider is None:
            raise BadRequestError(
                f"benchmark {benchmark_id!r} belongs to provider {benchmark.provider_id!r}, "
                "which this stack does not run",
                field="benchmark_id",
            )
        return benchmark, provider

    # ---- jobs ---------------------------------------------------------------------------

    async def run_eval(self, benchmark_id: str, request: RunEvalRequest) -> Job:
        benchmark, provider = self._route(benchmark_id)
        for fn_id in request.benchmark_config.scoring_params:
            if fn_id not in benchmark.scoring_functions:
                raise BadRequestError(
                    f"scoring_params names {fn_id!r}, which benchmark {benchmark_id!r} does not "
                    f"score with ({', '.join(benchmark.scoring_functions)})",
                    field=f"benchmark_config.scoring_params.{fn_id}",
                )
        job: Job = await provider.run_eval(benchmark, request.benchmark_config)
        return job

    async def job_status(self, benchmark_id: str, job_id: str) -> Job:
        benchmark, provider = self._route(benchmark_id)
        job: Job = await provider.job_status(benchmark, job_id)
        return job

    async def job_progress(self, benchmark_id: str, job_id: str) -> dict[str, Any]:
        benchmark, provider = self._route(benchmark_id)
        progress: dict[str, Any] = provider.job_progress(benchmark, job_id)
        return progress

    async def job_cancel(self, benchmark_id: str, job_id: str) -> None:
        benchmark, provider = self._route(benchmark_id)
        await provider.job_cancel(benchmark, job_id)

    async def job_result(self, benchmark_id: str, job_id: str) -> EvaluateResponse:
        benchmark, provider = self._route(benchmark_id)
        result: EvaluateResponse = await provider.job_result(benchmark, job_id)
        return result

    async def evaluate_rows(
        self, benchmark_id: str, request: EvaluateRowsRequest
    ) -> EvaluateResponse:
        benchmark, provider = self._route(benchmark_id)
        for fn_id in request.scoring_functions:
            await self.scoring.get_scoring_function(fn_id)
        result: EvaluateResponse = await provider.evaluate_rows(
            benchmark, request.input_rows, request.scoring_functions, request.benchmark_config
        )
        return result


# ---- building the router ----------------------------------------------------------------


async def build_router(
    stack: Any, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> EvalRouter:
    """The eval router (`ROUTERS[Api.eval]`), with the run config's benchmarks registered
    (idempotent: every replica does it)."""
    from stackray.runtime.resolver import build_providers
    from stackray.runtime.resources import open_registry

    providers = await build_providers(stack, Api.eval, deps, servers)
    router = EvalRouter(providers, open_registry(stack), deps[Api.datasetio], deps[Api.scoring])
    for entry in stack.benchmarks:
        await router.register_benchmark(
            RegisterBenchmarkRequest(
                benchmark_id=entry.benchmark_id,
                dataset_id=entry.dataset_id,
                scoring_functions=entry.scoring_functions,
                provider_id=entry.provider_id,
                provider_benchmark_id=entry.provider_benchmark_id,
                metadata=entry.metadata,
            )
        )
    return router
