"""A benchmark's eval as a Ray job, fanned out with Ray Data.

    ray job submit --working-dir . -- \
        python -m stackray.jobs.eval --benchmark-id mmlu --model Llama-3.1-8B-Instruct

The benchmark's dataset rows (the first ``--num-examples``) become a Ray Data dataset;
``--workers`` generation actors answer batches of ``--batch-size`` rows, each batch's rows
asked concurrently, through the stack's gateway (its inference router reaches the model
servers); a second stage scores each batch through the Scoring API. The driver stores the
finished rows where the eval API reads them (the `inline::meta-reference` provider's job
tables in the run config's store, ``--config``), records progress (rows done / total,
rows/s) and prints it, and at the end aggregates the scores and stores the result: ``GET
/v1/eval/benchmarks/{id}/jobs/{job_id}/result`` then answers it, and the job's status
and progress are the API's too. A job cancelled through the API stops after the batch in
hand. ``--job-id`` resumes a job from its stored rows (an eval replica also resumes a job
whose progress has stopped, as for its own jobs).

The stack is reached through its Serve deployment handles when the job runs on the
stack's Ray cluster (``--app``, default ``stackray``), or over HTTP with ``--url``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stackray.api.common import SamplingParams, SystemMessage, UserMessage
from stackray.api.eval import (
    Benchmark,
    BenchmarkConfig,
    EvaluateResponse,
    JobStatus,
    ModelCandidate,
)
from stackray.api.inference import ChatCompletionRequest
from stackray.api.scoring import ScoreRequest, ScoringFn, ScoringResult
from stackray.jobs.ray_session import run_on_ray

HEARTBEAT_S = 2.0


class EvalJobError(RuntimeError):
    """The job cannot go on (unknown benchmark, the stack refusing a call)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m stackray.jobs.eval",
        description="Run a stackray benchmark's eval as a Ray job with Ray Data.",
    )
    p.add_argument("--benchmark-id", required=True, help="The (registered) benchmark.")
    p.add_argument("--model", required=True, help="The candidate model (a registered llm).")
    p.add_argument("--max-tokens", type=int, default=256, help="Most tokens per answer.")
    p.add_argument("--system-message", default=None, help="A system message before each row.")
    p.add_argument("--num-examples", type=int, default=None, help="Only the first N rows.")
    p.add_argument("--workers", type=int, default=2, help="Concurrent generation actors.")
    p.add_argument("--batch-size", type=int, default=16, help="Rows per generation batch.")
    p.add_argument("--job-id", default=None, help="Resume this job from its stored rows.")
    p.add_argument(
        "--config", default="local", help="The stack's run config (file or distribution name)."
    )
    p.add_argument("--app", default="stackray", help="Serve application name of the stack.")
    p.add_argument("--url", default=None, help="Reach the stack over HTTP at this URL instead.")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: auto).")
    args = p.parse_args(argv)
    for name in ("workers", "batch_size", "max_tokens"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.num_examples is not None and args.num_examples < 1:
        p.error("--num-examples must be at least 1")
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        p.error("--url must be an http(s) URL")
    return args


# ---- talking to the stack -------------------------------------------------------------------


class StackAccess:
    """The calls the job makes, over Serve handles or HTTP."""

    def __init__(self, app: str, url: str | None) -> None:
        self.app = app
        self.url = url.rstrip("/") if url else None
        self._handles: dict[str, Any] = {}
        self._http: Any = None

    def _call(self, deployment: str, method: str, *args: Any) -> Any:
        from ray import serve

        from stackray.runtime.errors import unwrap

        if deployment not in self._handles:
            self._handles[deployment] = serve.get_deployment_handle(deployment, app_name=self.app)
        try:
            return self._handles[deployment].call_api.remote(None, method, *args).result()
        except Exception as exc:
            original = unwrap(exc)
            raise EvalJobError(
                f"{deployment}.{method}: {type(original).__name__}: {original}"
            ) from exc

    def _request(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        import httpx

        if self._http is None:
            self._http = httpx.Client(base_url=self.url or "", timeout=600)
        r = self._http.request(method, path, json=body, params=params)
        if r.status_code >= 400:
            raise EvalJobError(f"{method} {path}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    def benchmark(self, benchmark_id: str) -> Benchmark:
        if self.url:
            return Benchmark.model_validate(
                self._request("GET", f"/v1/eval/benchmarks/{benchmark_id}")
            )
        return Benchmark.model_validate(
            self._call("eval", "get_benchmark", benchmark_id).model_dump()
        )

    def rows(self, dataset_id: str, limit: int) -> list[dict[str, Any]]:
        if self.url:
            page = self._request(
                "GET",
                f"/v1/datasetio/iterrows/{dataset_id}",
                params={"start_index": 0, "limit": limit},
            )
            return list(page["data"])
        return list(self._call("datasetio", "iterrows", dataset_id, 0, limit).data)

    def scoring_function(self, fn_id: str) -> ScoringFn:
        if self.url:
            return ScoringFn.model_validate(self._request("GET", f"/v1/scoring-functions/{fn_id}"))
        return ScoringFn.model_validate(
            self._call("scoring", "get_scoring_function", fn_id).model_dump()
        )

    def chat(self, request: ChatCompletionRequest) -> str:
        from stackray.api.common import interleaved_content_as_str

        if self.url:
            body = request.model_dump(mode="json", exclude_none=True)
            out = self._request("POST", "/v1/inference/chat-completion", body)
            return interleaved_content_as_str(out["completion_message"]["content"])
        # The gateway's inference router reaches the model's server.
        response = self._call("gateway", "chat_completion", request)
        return interleaved_content_as_str(response.completion_message.content)

    def score(self, request: ScoreRequest) -> dict[str, ScoringResult]:
        if self.url:
            body = request.model_dump(mode="json", exclude_none=True)
            out = self._request("POST", "/v1/scoring/score", body)
            return {k: ScoringResult.model_validate(v) for k, v in out["results"].items()}
        return dict(self._call("scoring", "score", request).results)


# ---- the Ray Data stages ------------------------------------------------------------------------


class Answerer:
    """A Ray Data actor: answers a batch's rows concurrently through the stack."""

    def __init__(self, app: str, url: str | None, candidate: str, batch_size: int) -> None:
        self.stack = StackAccess(app, url)
        self.candidate = ModelCandidate.model_validate_json(candidate)
        self.pool = ThreadPoolExecutor(max_workers=batch_size)

    def _answer(self, raw: str) -> tuple[str, str]:
        from stackray.providers.inline.eval.meta_reference.generation import RowError, row_input

        row = json.loads(raw)
        try:
            kind, value = row_input(row)
            if kind == "completion":
                value = [UserMessage(content=value)]
            messages = list(value)
            if self.candidate.system_message is not None:
                messages = [self.candidate.system_message, *messages]
            answer = self.stack.chat(
                ChatCompletionRequest(
                    model_id=self.candidate.model,
                    messages=messages,
                    sampling_params=self.candidate.sampling_params,
                )
            )
        except (RowError, EvalJobError) as e:
            return "", str(e)
        return json.dumps({"generated_answer": answer}), ""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        results = list(self.pool.map(self._answer, [str(r) for r in batch["row"]]))
        return {
            **batch,
            "generation": np.array([g for g, _ in results], dtype=object),
            "error": np.array([e for _, e in results], dtype=object),
        }


class Scorer:
    """A Ray Data actor: scores a batch's answered rows through the Scoring API."""

    def __init__(self, app: str, url: str | None, functions: str) -> None:
        self.stack = StackAccess(app, url)
        self.functions = json.loads(functions)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from stackray.providers.inline.eval.meta_reference.generation import scoring_row

        answered = [i for i, e in enumerate(batch["error"]) if not e]
        scores = [""] * len(batch["error"])
        if answered:
            rows = [
                scoring_row(
                    json.loads(str(batch["row"][i])), json.loads(str(batch["generation"][i]))
                )
                for i in answered
            ]
            results = self.stack.score(
                ScoreRequest(input_rows=rows, scoring_functions=self.functions)
            )
            for k, i in enumerate(answered):
                scores[i] = json.dumps({fn: r.score_rows[k] for fn, r in results.items()})
        return {**batch, "scores": np.array(scores, dtype=object)}


# ---- the job --------------------------------------------------------------------------------------


def _stores(config_name: str) -> tuple[Any, Any]:
    """The eval provider's job and row tables in the stack's store."""
    from stackray.api.datatypes import Api
    from stackray.runtime.config import load_config
    from stackray.runtime.storage import DocumentStore

    stack = load_config(config_name)
    providers = [
        p for p in stack.providers_of(Api.eval) if p.provider_type == "inline::meta-reference"
    ]
    if not providers:
        raise EvalJobError(f"{config_name}: the stack has no inline::meta-reference eval provider")
    store = providers[0].config.get("kvstore") or stack.metadata_store_config()
    jobs = DocumentStore(store, "eval_jobs", {"benchmark_id": str, "created": float})
    rows = DocumentStore(store, "eval_job_rows", {"job_id": str, "row_index": int})
    return jobs, rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) the eval; the summary (also printed)."""
    result: dict[str, Any] = run_on_ray(args, _run)
    return result


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import ray.data

    from stackray.providers.utils.scoring import aggregate

    stack = StackAccess(args.app, args.url)
    benchmark = stack.benchmark(args.benchmark_id)
    candidate = ModelCandidate(
        model=args.model,
        sampling_params=SamplingParams(max_tokens=args.max_tokens),
        system_message=SystemMessage(content=args.system_message) if args.system_message else None,
    )
    config = BenchmarkConfig(eval_candidate=candidate, num_examples=args.num_examples)
    functions = {fn: stack.scoring_function(fn) for fn in benchmark.scoring_functions}
    rows = stack.rows(benchmark.dataset_id, args.num_examples or -1)
    jobs, row_store = _stores(args.config)

    job_id = args.job_id or f"evaljob-{uuid.uuid4().hex}"
    doc = jobs.get(job_id)
    now = time.time()
    if doc is None:
        if args.job_id:
            raise EvalJobError(f"job {job_id!r} not found")
        doc = {
            "job_id": job_id,
            "benchmark_id": benchmark.identifier,
            "benchmark": benchmark.model_dump(mode="json"),
            "config": config.model_dump(mode="json", exclude_none=True),
            "created": now,
            "done": 0,
            "failed_rows": 0,
            "rows_per_s": None,
            "resumed": 0,
            "error": None,
            "result": None,
        }
    doc.update(status=JobStatus.in_progress.value, heartbeat=now, total=len(rows), runner="ray-job")
    jobs.put(job_id, doc)
    done: dict[int, dict[str, Any]] = {
        r["row_index"]: r
        for d in row_store.query({"job_id": job_id}, order_by="row_index", desc=False)[0]
        for r in d["records"]
    }
    before = len(done)
    print(f"[eval] job {job_id}: {len(rows)} rows, {before} already done", flush=True)

    stop = threading.Event()

    def heartbeat() -> None:  # while a batch is in hand: no replica takes the job over
        while not stop.wait(HEARTBEAT_S):
            current = jobs.get(job_id)
            if current is None or current["status"] == JobStatus.cancelled.value:
                return
            current["heartbeat"] = time.time()
            jobs.put(job_id, current)

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    started = time.monotonic()
    cancelled = False
    params = {fn: config.scoring_params.get(fn) for fn in benchmark.scoring_functions}
    try:
        pending = [
            {"row_index": i, "row": json.dumps(rows[i])} for i in range(len(rows)) if i not in done
        ]
        if pending:
            ds: Any = ray.data.from_items(pending)
            ds = ds.map_batches(
                Answerer,
                fn_constructor_args=(
                    args.app,
                    args.url,
                    candidate.model_dump_json(),
                    args.batch_size,
                ),
                batch_size=args.batch_size,
                batch_format="numpy",
                concurrency=args.workers,
                num_cpus=0,
            )
            ds = ds.map_batches(
                Scorer,
                fn_constructor_args=(
                    args.app,
                    args.url,
                    json.dumps(
                        {k: v.model_dump(mode="json") if v else None for k, v in params.items()}
                    ),
                ),
                batch_size=args.batch_size,
                batch_format="numpy",
                concurrency=1,
                num_cpus=0,
            )
            for batch in ds.iter_batches(batch_size=args.batch_size, batch_format="numpy"):
                records = []
                for index, generation, error, scores in zip(
                    batch["row_index"],
                    batch["generation"],
                    batch["error"],
                    batch["scores"],
                    strict=True,
                ):
                    record: dict[str, Any] = {"row_index": int(index)}
                    if error:
                        record["error"] = f"row {int(index)}: {error}"
                    else:
                        record["generation"] = json.loads(str(generation))
                        record["scores"] = json.loads(str(scores))
                    records.append(record)
                    done[int(index)] = record
                row_store.put(
                    f"{job_id}:{uuid.uuid4().hex}",
                    {"job_id": job_id, "row_index": records[0]["row_index"], "records": records},
                )
                current = jobs.get(job_id) or doc
                if current["status"] == JobStatus.cancelled.value:
                    cancelled = True
                    print(f"[eval] job {job_id} cancelled", flush=True)
                    break
                elapsed = max(time.monotonic() - started, 1e-9)
                failed = sum(1 for r in done.values() if r.get("error"))
                current.update(
                    done=len(done),
                    failed_rows=failed,
                    rows_per_s=(len(done) - before) / elapsed,
                    heartbeat=time.time(),
                )
                jobs.put(job_id, current)
                print(
                    f"[eval] {len(done)}/{len(rows)} rows ({failed} failed), "
                    f"{current['rows_per_s']:.1f} rows/s",
                    flush=True,
                )
    finally:
        stop.set()
    if cancelled:
        return {"job_id": job_id, "status": "cancelled", "done": len(done), "total": len(rows)}

    # A resumed job's rows stored by an eval replica have no scores yet: score them now.
    unscored = [i for i, r in done.items() if not r.get("error") and "scores" not in r]
    if unscored:
        results = stack.score(
            ScoreRequest(
                input_rows=[_scoring_row(rows[i], done[i]["generation"]) for i in unscored],
                scoring_functions=params,
            )
        )
        for k, i in enumerate(unscored):
            done[i]["scores"] = {fn: r.score_rows[k] for fn, r in results.items()}

    generations: list[dict[str, Any]] = []
    score_rows: dict[str, list[dict[str, Any]]] = {fn: [] for fn in benchmark.scoring_functions}
    for i in range(len(rows)):
        record = done[i]
        if record.get("error"):
            generations.append({"generated_answer": None, "error": record["error"]})
        else:
            generations.append(record["generation"])
        for fn in benchmark.scoring_functions:
            if record.get("error"):
                score_rows[fn].append({"score": None, "error": record["error"]})
            else:
                score_rows[fn].append(record["scores"][fn])
    scores = {}
    for fn_id, registered in functions.items():
        chosen = params.get(fn_id) or registered.params
        answered = [
            r for r, g in zip(score_rows[fn_id], generations, strict=True) if not g.get("error")
        ]
        scores[fn_id] = ScoringResult(
            score_rows=score_rows[fn_id],
            aggregated_results=aggregate(answered, chosen.aggregation_functions if chosen else []),
        )
    result = EvaluateResponse(generations=generations, scores=scores)
    elapsed = max(time.monotonic() - started, 1e-9)
    final = jobs.get(job_id) or doc
    failed = sum(1 for r in done.values() if r.get("error"))
    final.update(
        status=JobStatus.completed.value,
        done=len(done),
        failed_rows=failed,
        rows_per_s=(len(done) - before) / elapsed,
        heartbeat=time.time(),
        result=result.model_dump(mode="json"),
    )
    jobs.put(job_id, final)
    summary = {
        "job_id": job_id,
        "benchmark_id": benchmark.identifier,
        "status": "completed",
        "rows": len(rows),
        "failed_rows": failed,
        "seconds": round(elapsed, 3),
        "rows_per_s": round((len(done) - before) / elapsed, 2),
        "aggregated_results": {fn: r.aggregated_results for fn, r in scores.items()},
    }
    print("[eval] done " + json.dumps(summary), flush=True)
    return summary


def _scoring_row(row: dict[str, Any], generation: dict[str, Any]) -> dict[str, Any]:
    from stackray.providers.inline.eval.meta_reference.generation import scoring_row

    return scoring_row(row, generation)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except EvalJobError as exc:
        print(f"[eval] error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0 if summary["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
