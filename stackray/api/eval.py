"""The Eval and Benchmarks APIs: registered benchmarks, eval jobs, evaluating rows."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import Field

from stackray.api.agents import AgentConfig
from stackray.api.common import ApiModel, JsonValue, SamplingParams, SystemMessage
from stackray.api.datatypes import Api, ResourceType
from stackray.api.routes import Route
from stackray.api.scoring import ScoringFnParams, ScoringResult

Row = dict[str, JsonValue]


class Benchmark(ApiModel):
    """A registered benchmark: a dataset and the scoring functions its answers get."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.benchmark] = ResourceType.benchmark
    dataset_id: str
    scoring_functions: list[str]
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class RegisterBenchmarkRequest(ApiModel):
    benchmark_id: str
    dataset_id: str
    scoring_functions: list[str]
    provider_benchmark_id: str | None = None
    provider_id: str | None = None
    metadata: dict[str, JsonValue] | None = None


class ListBenchmarksResponse(ApiModel):
    data: list[Benchmark]


class ModelCandidate(ApiModel):
    """A model answering each row (its messages, after `system_message`)."""

    type: Literal["model"] = "model"
    model: str
    sampling_params: SamplingParams = Field(default_factory=SamplingParams)
    system_message: SystemMessage | None = None


class AgentCandidate(ApiModel):
    """An agent answering each row in a turn of a session of its own."""

    type: Literal["agent"] = "agent"
    config: AgentConfig


EvalCandidate = Annotated[ModelCandidate | AgentCandidate, Field(discriminator="type")]


class BenchmarkConfig(ApiModel):
    eval_candidate: EvalCandidate
    scoring_params: dict[str, ScoringFnParams] = Field(default_factory=dict)
    num_examples: int | None = Field(default=None, ge=1)


class RunEvalRequest(ApiModel):
    benchmark_config: BenchmarkConfig


class EvaluateRowsRequest(ApiModel):
    input_rows: list[Row]
    scoring_functions: list[str]
    benchmark_config: BenchmarkConfig


class EvaluateResponse(ApiModel):
    generations: list[Row]
    scores: dict[str, ScoringResult]


class JobStatus(str, Enum):
    completed = "completed"
    in_progress = "in_progress"
    failed = "failed"
    scheduled = "scheduled"
    cancelled = "cancelled"


class Job(ApiModel):
    job_id: str
    status: JobStatus


# ---------------------------------------------------------------------------------------
# What an eval provider implements
# ---------------------------------------------------------------------------------------


@runtime_checkable
class EvalProvider(Protocol):
    """Runs benchmarks. The router owns the benchmark registry; jobs are the provider's."""

    async def register_benchmark(self, benchmark: Benchmark) -> Benchmark: ...

    async def run_eval(self, benchmark: Benchmark, config: BenchmarkConfig) -> Job: ...

    async def job_status(self, benchmark: Benchmark, job_id: str) -> Job: ...

    async def job_cancel(self, benchmark: Benchmark, job_id: str) -> None: ...

    async def job_result(self, benchmark: Benchmark, job_id: str) -> EvaluateResponse: ...

    async def evaluate_rows(
        self,
        benchmark: Benchmark,
        rows: list[dict[str, Any]],
        scoring_functions: list[str],
        config: BenchmarkConfig,
    ) -> EvaluateResponse: ...


_JOBS = "/v1/eval/benchmarks/{benchmark_id:path}/jobs"

# The job routes come before the benchmark's own: its id is a path and would swallow them.
ROUTES = (
    Route(
        "GET",
        "/v1/eval/benchmarks",
        Api.benchmarks,
        "list_benchmarks",
        returns=ListBenchmarksResponse,
    ),
    Route(
        "POST",
        "/v1/eval/benchmarks",
        Api.benchmarks,
        "register_benchmark",
        body=RegisterBenchmarkRequest,
        empty=True,
    ),
    Route("POST", _JOBS, Api.eval, "run_eval", body=RunEvalRequest, returns=Job),
    Route("GET", _JOBS + "/{job_id}/result", Api.eval, "job_result", returns=EvaluateResponse),
    # Rows done / total, rows per second: a plain JSON object.
    Route("GET", _JOBS + "/{job_id}/progress", Api.eval, "job_progress", handler="plain_json"),
    Route("GET", _JOBS + "/{job_id}", Api.eval, "job_status", returns=Job),
    Route("DELETE", _JOBS + "/{job_id}", Api.eval, "job_cancel", empty=True),
    Route(
        "POST",
        "/v1/eval/benchmarks/{benchmark_id:path}/evaluations",
        Api.eval,
        "evaluate_rows",
        body=EvaluateRowsRequest,
        returns=EvaluateResponse,
    ),
    Route(
        "GET",
        "/v1/eval/benchmarks/{benchmark_id:path}",
        Api.benchmarks,
        "get_benchmark",
        returns=Benchmark,
    ),
)
