"""Throughput of the bulk ingestion job (`stackray.jobs.ingest`) with 1 vs 2 embedding
workers, in one run.

Starts its own stack on Ray Serve in this process (inference: sentence-transformers with
all-MiniLM-L6-v2; vector_io: faiss), writes a synthetic corpus of text files into a
temporary folder (default 200 documents of 150 to 600 words: 1 to 3 chunks of 256
tokens each), and runs the job in handle mode (Ray Data in this process, embeddings on the
`inference` deployment, inserts through `vector-io`) into a fresh vector db per run, with
--workers 1 then 2 (then again in the other order with --rounds 2). Reports documents/s
and chunks/s per worker count (median over rounds) and the 2-worker / 1-worker ratio.

    python bench/ingest.py [--quick] [--json PATH] [--documents N] [--rounds R]
"""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

MODEL = "all-MiniLM-L6-v2"
CHUNK_TOKENS = 256

_WORDS = (
    "the a river mountain city quiet bright engine garden winter summer train station "
    "library window ocean forest painter music number signal market bridge tower cloud "
    "stone letter morning evening travels builds opens watches carries finds remembers "
    "slowly quickly under over near beside through across old new small large green red"
).split()


def write_corpus(folder: Path, n: int, seed: int = 11) -> int:
    """`n` text files of 150 to 600 words, in 10 sub-folders; the total word count."""
    rng = random.Random(seed)
    words = 0
    for i in range(n):
        sentences = []
        count = rng.randint(150, 600)
        words += count
        left = count
        while left > 0:
            k = min(left, rng.randint(8, 20))
            sentences.append(" ".join(rng.choice(_WORDS) for _ in range(k)).capitalize() + ".")
            left -= k
        path = folder / f"part{i % 10}" / f"doc{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Document {i}.\n\n" + " ".join(sentences) + "\n")
    return words


def stack_config(data_dir: str) -> dict[str, Any]:
    models = c.local_models("sentence-transformers")
    return {
        "version": 2,
        "image_name": "bench-ingest",
        "apis": ["inference", "vector_io"],
        "providers": {
            "inference": [c.local_provider("sentence-transformers")],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
        },
        "models": models,
        "storage": {"data_dir": data_dir},
        "deployments": {"gateway": {"num_replicas": 1}},
    }


def ingest_once(corpus: Path, tmp: Path, workers: int, tag: str) -> dict[str, Any]:
    """One run of the job into a new vector db; its summary."""
    from ray import serve

    from stackray.api.vector_io import RegisterVectorDbRequest
    from stackray.jobs import ingest

    vdb = f"bench-{tag}-w{workers}"
    handle = serve.get_deployment_handle("vector-io", app_name="stackray")
    handle.call_api.remote(
        None, "register_vector_db", RegisterVectorDbRequest(vector_db_id=vdb, embedding_model=MODEL)
    ).result()
    args = ingest.parse_args(
        [
            "--vector-db-id", vdb, "--source", str(corpus), "--workers", str(workers),
            "--chunk-size", str(CHUNK_TOKENS), "--checkpoint", str(tmp / f"{vdb}.ckpt"),
        ]
    )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # the job's progress lines
        summary = ingest.run(args)
    if summary["failed_documents"]:
        raise RuntimeError(f"documents failed: {summary['failed_documents']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=None, help="corpus size (default 200)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 2, quick 1)")
    args = parser.parse_args(argv)
    print(c.describe_environment(), flush=True)
    n_docs = args.documents or (40 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 2)
    c.quiet_environment()
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False

    measured: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="stackray-bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus"
        words = write_corpus(corpus, n_docs)
        print(f"corpus: {n_docs} documents, {words} words", flush=True)
        started = time.perf_counter()
        with c.running_stack(stack_config(str(tmp / "stack"))):
            print(f"stack ready in {time.perf_counter() - started:.1f}s", flush=True)
            warm = tmp / "warm"
            write_corpus(warm, 4, seed=1)
            ingest_once(warm, tmp, 1, "warm")  # model load, Ray Data start, first handles
            for r in range(rounds):
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for workers in order:
                    s = ingest_once(corpus, tmp, workers, f"r{r}")
                    measured[workers].append(s)
                    print(
                        f"  round {r + 1}, {workers} worker(s): {s['documents']} documents, "
                        f"{s['chunks']} chunks in {s['seconds']:.1f}s: "
                        f"{s['documents_per_s']:.1f} docs/s, {s['chunks_per_s']:.1f} chunks/s",
                        flush=True,
                    )

    rows = []
    results: dict[str, Any] = {"documents": n_docs, "words": words, "rounds": rounds}
    rates: dict[int, tuple[float, float]] = {}
    for workers in (1, 2):
        docs_s = c.median([s["documents_per_s"] for s in measured[workers]])
        chunks_s = c.median([s["chunks_per_s"] for s in measured[workers]])
        rates[workers] = (docs_s, chunks_s)
        results[f"workers_{workers}"] = {
            "documents_per_s": docs_s,
            "chunks_per_s": chunks_s,
            "runs": measured[workers],
        }
    for workers in (1, 2):
        docs_s, chunks_s = rates[workers]
        rows.append(
            [
                f"{workers} embedding worker(s)",
                docs_s,
                chunks_s,
                c.fmt_ratio(c.ratio(chunks_s, rates[1][1])),
            ]
        )
    results["ratio_2_vs_1"] = c.ratio(rates[2][1], rates[1][1])
    chunks = measured[1][0]["chunks"]
    print()
    print(
        c.format_table(
            ["ingest job", "documents/s", "chunks/s", "vs 1 worker"],
            rows,
            title=(
                f"Ingestion of {n_docs} documents ({chunks} chunks of <= {CHUNK_TOKENS} "
                f"tokens), {MODEL}, faiss, median of {rounds} round(s)"
            ),
        )
    )
    c.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
