"""`inline::meta-reference`: eval jobs, persisted, cancellable and resumed after a restart.

`run_eval` records a job and runs it in this replica: the benchmark's dataset rows (the
first `num_examples`) are asked of the candidate, at most `max_concurrency` at once, and
the finished rows (each one's answer, or its error) are stored every `heartbeat_s`. When every row is
done, the rows that have an answer are scored through the Scoring API and the result is
stored with the job. The job's status, progress (rows done / total, rows/s) and result
are in the store, so any replica answers for any job and a restart finds them.

A running job records its progress every `heartbeat_s`, and then looks whether it was
cancelled (by any replica): a cancel stops its work within that interval. A job whose
progress is older than `stale_after_s` has lost its replica; a replica that starts, and
each replica every few heartbeats, claims such a job (one claim per stale heartbeat, so
one replica wins) and resumes it from its stored rows (rows finished in the last
heartbeat before a crash are asked again).

A row whose generation fails is recorded as failed with its error, in the job's result
too (``generations[i]["error"]``, and a null score in each function's ``score_rows``); the
aggregates are over the rows that have an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, NotFoundError, StackError
from stackray.api.eval import (
    Benchmark,
    BenchmarkConfig,
    EvaluateResponse,
    Job,
    JobStatus,
)
from stackray.api.scoring import ScoreRequest, ScoringResult
from stackray.providers.inline.eval.meta_reference.config import MetaReferenceEvalConfig
from stackray.providers.inline.eval.meta_reference.generation import (
    Generator,
    RowError,
    scoring_row,
)
from stackray.runtime.errors import to_stack_error
from stackray.runtime.resolver import ProviderContext
from stackray.runtime.storage import DocumentStore, open_kvstore

logger = logging.getLogger("stackray.eval")

TERMINAL = (JobStatus.completed, JobStatus.failed, JobStatus.cancelled)


class MetaReferenceEval:
    """Runs benchmarks over the Inference (or Agents), DatasetIO and Scoring APIs."""

    def __init__(
        self, config: MetaReferenceEvalConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.deps = deps
        self.context = context
        store = config.kvstore or context.stack.metadata_store_config()
        self.jobs = DocumentStore(store, "eval_jobs", {"benchmark_id": str, "created": float})
        self.rows = DocumentStore(store, "eval_job_rows", {"job_id": str, "row_index": int})
        self.claims = open_kvstore(store)
        self.running: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def initialize(self) -> None:
        self._ensure_sweeper()

    def _ensure_sweeper(self) -> None:
        """The task that resumes stale jobs, running in the current event loop (a replica
        keeps the loop it was built in; a process that built the provider in a loop of its
        own starts it again with its first call)."""
        loop = asyncio.get_running_loop()
        if self._sweeper is None or self._sweeper.done() or self._sweeper.get_loop() is not loop:
            self._sweeper = loop.create_task(self._sweep())

    async def shutdown(self) -> None:
        """Stop this replica's work (the jobs stay in_progress: another replica resumes them)."""
        for task in [*self.running.values(), *([self._sweeper] if self._sweeper else [])]:
            task.cancel()
        for task in list(self.running.values()):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self.running.clear()

    # ---- benchmarks ---------------------------------------------------------------------

    async def register_benchmark(self, benchmark: Benchmark) -> Benchmark:
        return benchmark

    # ---- jobs ---------------------------------------------------------------------------

    def _job(self, benchmark: Benchmark, job_id: str) -> dict[str, Any]:
        doc = self.jobs.get(job_id)
        if doc is None or doc["benchmark_id"] != benchmark.identifier:
            raise NotFoundError(
                f"job {job_id!r} of benchmark {benchmark.identifier!r} not found", field="job_id"
            )
        return doc

    async def run_eval(self, benchmark: Benchmark, config: BenchmarkConfig) -> Job:
        self._ensure_sweeper()
        generator = Generator(config.eval_candidate, self.deps)
        await generator.start()  # a bad candidate is refused now, not as a failed job
        await generator.close()
        job_id = f"evaljob-{uuid.uuid4().hex}"
        now = time.time()
        self.jobs.put(
            job_id,
            {
                "job_id": job_id,
                "benchmark_id": benchmark.identifier,
                "benchmark": benchmark.model_dump(mode="json"),
                "config": config.model_dump(mode="json", exclude_none=True),
                "status": JobStatus.scheduled.value,
                "created": now,
                "heartbeat": now,
                "total": None,
                "done": 0,
                "failed_rows": 0,
                "rows_per_s": None,
                "resumed": 0,
                "error": None,
                "result": None,
            },
        )
        self._start(job_id)
        return Job(job_id=job_id, status=JobStatus.scheduled)

    def job_progress(self, benchmark: Benchmark, job_id: str) -> dict[str, Any]:
        """Status, rows done / total, failed rows, rows/s, error (beyond the contract)."""
        doc = self._job(benchmark, job_id)
        keys = ("status", "total", "done", "failed_rows", "rows_per_s", "resumed", "error")
        return {"job_id": job_id, **{k: doc.get(k) for k in keys}}

    async def job_status(self, benchmark: Benchmark, job_id: str) -> Job:
        self._ensure_sweeper()
        return Job(job_id=job_id, status=JobStatus(self._job(benchmark, job_id)["status"]))

    async def job_cancel(self, benchmark: Benchmark, job_id: str) -> None:
        self._ensure_sweeper()
        doc = self._job(benchmark, job_id)
        if JobStatus(doc["status"]) in TERMINAL:
            return
        doc["status"] = JobStatus.cancelled.value
        self.jobs.put(job_id, doc)
        task = self.running.get(job_id)
        if task is not None:
            task.cancel()

    async def job_result(self, benchmark: Benchmark, job_id: str) -> EvaluateResponse:
        self._ensure_sweeper()
        doc = self._job(benchmark, job_id)
        status = JobStatus(doc["status"])
        if status != JobStatus.completed:
            why = f": {doc['error']}" if doc.get("error") else ""
            raise BadRequestError(
                f"job {job_id!r} is {status.value}{why}; its result is there once it has completed",
                field="job_id",
            )
        return EvaluateResponse.model_validate(doc["result"])

    # ---- running ------------------------------------------------------------------------

    def _start(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job_id))
        self.running[job_id] = task
        task.add_done_callback(lambda _t: self.running.pop(job_id, None))

    def _update(self, job_id: str, **fields: Any) -> dict[str, Any] | None:
        """Write `fields` to the job, unless it was cancelled: a cancel is final."""
        doc = self.jobs.get(job_id)
        if doc is None or doc["status"] == JobStatus.cancelled.value:
            return doc
        doc.update(fields)
        self.jobs.put(job_id, doc)
        return doc

    async def _run(self, job_id: str) -> None:
        try:
            await self._run_job(job_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = to_stack_error(exc, self.context.provider_id)
            logger.warning("eval job %s failed: %s", job_id, err.message)
            self._update(job_id, status=JobStatus.failed.value, error=err.message)

    async def _run_job(self, job_id: str) -> None:
        doc = self.jobs.get(job_id)
        if doc is None or JobStatus(doc["status"]) in TERMINAL:
            return
        benchmark = Benchmark.model_validate(doc["benchmark"])
        config = BenchmarkConfig.model_validate(doc["config"])
        rows = await self._dataset_rows(benchmark, config)
        done = {
            record["row_index"]: record
            for d in self.rows.query({"job_id": job_id}, order_by="row_index", desc=False)[0]
            for record in d["records"]
        }
        pending: list[dict[str, Any]] = []
        started = time.monotonic()
        before = len(done)
        self._update(
            job_id,
            status=JobStatus.in_progress.value,
            total=len(rows),
            done=before,
            heartbeat=time.time(),
        )
        generator = Generator(config.eval_candidate, self.deps)
        await generator.start()
        heartbeat = asyncio.get_running_loop().create_task(
            self._heartbeat(job_id, done, pending, before, started, asyncio.current_task())
        )
        try:
            await self._generate(job_id, generator, rows, done, pending)
        finally:
            heartbeat.cancel()
            self._flush(job_id, pending)
            await generator.close()
        finished = self.jobs.get(job_id)
        if finished is None or finished["status"] == JobStatus.cancelled.value:
            return
        result = await self._score(benchmark, config, rows, done)
        elapsed = max(time.monotonic() - started, 1e-9)
        self._update(
            job_id,
            status=JobStatus.completed.value,
            done=len(done),
            failed_rows=sum(1 for d in done.values() if d.get("error")),
            rows_per_s=(len(done) - before) / elapsed,
            heartbeat=time.time(),
            result=result.model_dump(mode="json"),
        )

    async def _dataset_rows(
        self, benchmark: Benchmark, config: BenchmarkConfig
    ) -> list[dict[str, Any]]:
        datasetio = self.deps[Api.datasetio]
        limit = config.num_examples if config.num_examples is not None else -1
        page = await datasetio.iterrows(benchmark.dataset_id, 0, limit)
        return list(page.data)

    async def _generate(
        self,
        job_id: str,
        generator: Generator,
        rows: list[dict[str, Any]],
        done: dict[int, dict[str, Any]],
        pending: list[dict[str, Any]],
    ) -> None:
        gate = asyncio.Semaphore(self.config.max_concurrency)

        async def one(index: int) -> None:
            async with gate:
                record: dict[str, Any] = {"row_index": index}
                try:
                    record["generation"] = await generator.generate(rows[index])
                except RowError as e:
                    record["error"] = f"row {index}: {e}"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    record["error"] = f"row {index}: {to_stack_error(exc).message}"
                pending.append(record)
                done[index] = record

        await asyncio.gather(*(one(i) for i in range(len(rows)) if i not in done))

    def _flush(self, job_id: str, pending: list[dict[str, Any]]) -> None:
        """Store the rows finished since the last flush, as one document (one write per
        heartbeat, not per row: a row costs no store round trip of its own)."""
        if not pending:
            return
        records = list(pending)
        pending.clear()
        first = min(r["row_index"] for r in records)
        self.rows.put(
            f"{job_id}:{uuid.uuid4().hex}",
            {"job_id": job_id, "row_index": first, "records": records},
        )

    async def _heartbeat(
        self,
        job_id: str,
        done: dict[int, Any],
        pending: list[dict[str, Any]],
        before: int,
        started: float,
        runner: asyncio.Task[Any] | None,
    ) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            self._flush(job_id, pending)
            doc = self.jobs.get(job_id)
            if doc is None or doc["status"] == JobStatus.cancelled.value:
                if runner is not None:
                    runner.cancel()
                return
            elapsed = max(time.monotonic() - started, 1e-9)
            self._update(
                job_id,
                done=len(done),
                failed_rows=sum(1 for d in done.values() if d.get("error")),
                rows_per_s=(len(done) - before) / elapsed,
                heartbeat=time.time(),
            )

    async def _score(
        self,
        benchmark: Benchmark,
        config: BenchmarkConfig,
        rows: list[dict[str, Any]],
        done: dict[int, dict[str, Any]],
    ) -> EvaluateResponse:
        generations: list[dict[str, Any]] = []
        answered: list[int] = []
        for i in range(len(rows)):
            record = done[i]
            if record.get("error"):
                generations.append({"generated_answer": None, "error": record["error"]})
            else:
                generations.append(record["generation"])
                answered.append(i)
        return await self._scores(benchmark.scoring_functions, config, rows, generations, answered)

    async def _scores(
        self,
        functions: list[str],
        config: BenchmarkConfig,
        rows: list[dict[str, Any]],
        generations: list[dict[str, Any]],
        answered: list[int],
    ) -> EvaluateResponse:
        scores: dict[str, ScoringResult] = {}
        if functions:
            scored = await self.deps[Api.scoring].score(
                ScoreRequest(
                    input_rows=[scoring_row(rows[i], generations[i]) for i in answered],
                    scoring_functions={f: config.scoring_params.get(f) for f in functions},
                )
            )
            for fn_id, result in scored.results.items():
                by_index = dict(zip(answered, result.score_rows, strict=True))
                score_rows = [
                    by_index.get(i, {"score": None, "error": generations[i].get("error")})
                    for i in range(len(rows))
                ]
                scores[fn_id] = ScoringResult(
                    score_rows=score_rows, aggregated_results=result.aggregated_results
                )
        return EvaluateResponse(generations=generations, scores=scores)

    # ---- restarts -----------------------------------------------------------------------

    def resume_stale_jobs(self) -> list[str]:
        """Claim and resume the jobs that lost their replica; their ids."""
        resumed = []
        stale = time.time() - self.config.stale_after_s
        for status in (JobStatus.scheduled, JobStatus.in_progress):
            docs, _ = self.jobs.query(order_by="created", desc=False)
            for doc in docs:
                if doc["status"] != status.value or doc["job_id"] in self.running:
                    continue
                if doc["heartbeat"] > stale:
                    continue
                claim = f"eval:claim:{doc['job_id']}:{doc['heartbeat']}"
                if not self.claims.set_if_absent(claim, self.context.provider_id):
                    continue
                doc["resumed"] = int(doc.get("resumed") or 0) + 1
                doc["heartbeat"] = time.time()
                self.jobs.put(doc["job_id"], doc)
                self._start(doc["job_id"])
                resumed.append(doc["job_id"])
        return resumed

    async def _sweep(self) -> None:
        while True:
            try:
                self.resume_stale_jobs()
            except StackError as e:  # the store is briefly unavailable: try again later
                logger.warning("eval: cannot look for stale jobs: %s", e.message)
            await asyncio.sleep(max(self.config.heartbeat_s * 5, self.config.stale_after_s / 2))

    # ---- evaluating rows ----------------------------------------------------------------

    async def evaluate_rows(
        self,
        benchmark: Benchmark,
        rows: list[dict[str, Any]],
        scoring_functions: list[str],
        config: BenchmarkConfig,
    ) -> EvaluateResponse:
        if len(rows) > self.config.max_rows_per_request:
            raise BadRequestError(
                f"{len(rows)} rows in one request; at most {self.config.max_rows_per_request} "
                "(max_rows_per_request); run a job for more",
                field="input_rows",
            )
        generator = Generator(config.eval_candidate, self.deps)
        await generator.start()
        done: dict[int, dict[str, Any]] = {}
        try:
            await self._generate_inline(generator, rows, done)
        finally:
            await generator.close()
        generations: list[dict[str, Any]] = []
        answered = []
        for i in range(len(rows)):
            if done[i].get("error"):
                generations.append({"generated_answer": None, "error": done[i]["error"]})
            else:
                generations.append(done[i]["generation"])
                answered.append(i)
        return await self._scores(scoring_functions, config, rows, generations, answered)

    async def _generate_inline(
        self, generator: Generator, rows: list[dict[str, Any]], done: dict[int, dict[str, Any]]
    ) -> None:
        gate = asyncio.Semaphore(self.config.max_concurrency)

        async def one(index: int) -> None:
            async with gate:
                try:
                    done[index] = {"generation": await generator.generate(rows[index])}
                except RowError as e:
                    done[index] = {"error": f"row {index}: {e}"}
                except Exception as exc:
                    done[index] = {"error": f"row {index}: {to_stack_error(exc).message}"}

        await asyncio.gather(*(one(i) for i in range(len(rows))))
