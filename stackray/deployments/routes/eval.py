"""Routes of the eval and benchmarks APIs."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

from stackray.api.datatypes import Api
from stackray.api.eval import EvaluateRowsRequest, RegisterBenchmarkRequest, RunEvalRequest
from stackray.deployments.routes import Routes

EVAL = Api.eval.value
JOBS = "/v1/eval/benchmarks/{benchmark_id:path}/jobs"


def register(routes: Routes) -> None:
    call, json = routes.call, routes.json

    # ---- benchmarks --------------------------------------------------------------------

    async def list_benchmarks() -> Response:
        return json(await call(EVAL, "list_benchmarks"))

    async def register_benchmark(body: RegisterBenchmarkRequest) -> Response:
        await call(EVAL, "register_benchmark", body)
        return json(None)

    async def get_benchmark(benchmark_id: str) -> Response:
        return json(await call(EVAL, "get_benchmark", benchmark_id))

    routes.add(Api.benchmarks, "GET", "/v1/eval/benchmarks", list_benchmarks)
    routes.add(Api.benchmarks, "POST", "/v1/eval/benchmarks", register_benchmark)

    # ---- jobs and evaluations ------------------------------------------------------------

    async def run_eval(benchmark_id: str, body: RunEvalRequest) -> Response:
        return json(await call(EVAL, "run_eval", benchmark_id, body))

    async def job_status(benchmark_id: str, job_id: str) -> Response:
        return json(await call(EVAL, "job_status", benchmark_id, job_id))

    async def job_progress(benchmark_id: str, job_id: str) -> Response:
        return JSONResponse(await call(EVAL, "job_progress", benchmark_id, job_id))

    async def job_cancel(benchmark_id: str, job_id: str) -> Response:
        await call(EVAL, "job_cancel", benchmark_id, job_id)
        return json(None)

    async def job_result(benchmark_id: str, job_id: str) -> Response:
        return json(await call(EVAL, "job_result", benchmark_id, job_id))

    async def evaluate_rows(benchmark_id: str, body: EvaluateRowsRequest) -> Response:
        return json(await call(EVAL, "evaluate_rows", benchmark_id, body))

    # The job routes come before the benchmark's own: its id is a path and would swallow them.
    routes.add(Api.eval, "POST", JOBS, run_eval)
    routes.add(Api.eval, "GET", JOBS + "/{job_id}/result", job_result)
    routes.add(Api.eval, "GET", JOBS + "/{job_id}/progress", job_progress)
    routes.add(Api.eval, "GET", JOBS + "/{job_id}", job_status)
    routes.add(Api.eval, "DELETE", JOBS + "/{job_id}", job_cancel)
    routes.add(
        Api.eval, "POST", "/v1/eval/benchmarks/{benchmark_id:path}/evaluations", evaluate_rows
    )
    routes.add(Api.benchmarks, "GET", "/v1/eval/benchmarks/{benchmark_id:path}", get_benchmark)
