"""Bulk ingestion into a vector db with Ray Data.

    ray job submit -- python -m stackray.jobs.ingest --vector-db-id docs --source ./corpus

Reads a folder (every file: text, markdown, HTML, PDF, JSON) or a JSONL/Parquet dataset
(one document per row: ``--text-column``, optional ``--id-column``), converts and chunks
the documents by tokens in parallel, embeds the chunks in batches on the stack's inference
deployment (``--workers`` concurrent embedding workers), and inserts pre-embedded chunks
into the vector db in batches. Progress is printed as documents and chunks complete.

Resumable: every document whose chunks are all inserted is appended to the checkpoint
file (``--checkpoint``, default ``<source>.ingest-<vector_db_id>.ckpt``); a re-run skips
those. Chunk ids are ``<document_id>:<n>``, so a document interrupted half-way is simply
written again, replacing its chunks.

The stack is reached through its Serve deployments when the job runs on the stack's Ray
cluster (``--app``, default ``stackray``), or over HTTP with ``--url``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stackray.api.inference import EmbeddingsRequest
from stackray.api.vector_io import Chunk, InsertChunksRequest

DEFAULT_CHUNK_TOKENS = 512


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m stackray.jobs.ingest",
        description="Chunk, embed and insert a folder or dataset into a stackray vector db.",
    )
    p.add_argument("--vector-db-id", required=True, help="The (registered) vector db to fill.")
    p.add_argument("--source", required=True, help="A folder, or a .jsonl / .parquet dataset.")
    p.add_argument("--text-column", default="text", help="Dataset column holding the text.")
    p.add_argument("--id-column", default=None, help="Dataset column holding the document id.")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_TOKENS, help="Tokens per chunk.")
    p.add_argument(
        "--chunk-overlap", type=int, default=None, help="Token overlap (default: size/4)."
    )
    p.add_argument("--batch-size", type=int, default=64, help="Chunks per embedding call.")
    p.add_argument("--insert-batch-size", type=int, default=256, help="Chunks per insert call.")
    p.add_argument("--workers", type=int, default=2, help="Concurrent embedding workers.")
    p.add_argument("--checkpoint", default=None, help="Checkpoint file (resumable runs).")
    p.add_argument("--app", default="stackray", help="Serve application name of the stack.")
    p.add_argument("--url", default=None, help="Reach the stack over HTTP at this URL instead.")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: auto).")
    args = p.parse_args(argv)
    if args.chunk_size < 16:
        p.error("--chunk-size must be at least 16 tokens")
    if args.chunk_overlap is None:
        args.chunk_overlap = args.chunk_size // 4
    if not 0 <= args.chunk_overlap < args.chunk_size:
        p.error("--chunk-overlap must be between 0 and --chunk-size - 1")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if not Path(args.source).exists():
        p.error(f"--source {args.source!r} does not exist")
    return args


# ---- talking to the stack ---------------------------------------------------------------


class StackAccess:
    """The two calls the job makes, over Serve handles or HTTP."""

    def __init__(self, app: str, url: str | None) -> None:
        self.app = app
        self.url = url.rstrip("/") if url else None
        self._handles: dict[str, Any] = {}

    def _call(self, deployment: str, method: str, arg: Any) -> Any:
        from ray import serve

        if deployment not in self._handles:
            self._handles[deployment] = serve.get_deployment_handle(deployment, app_name=self.app)
        return self._handles[deployment].call_api.remote(None, method, arg).result()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        r = httpx.post(f"{self.url}{path}", json=body, timeout=600)
        if r.status_code >= 400:
            raise RuntimeError(f"{path}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json() if r.content and r.content != b"null" else {}

    def vector_db(self, vector_db_id: str) -> dict[str, Any]:
        if self.url:
            import httpx

            r = httpx.get(f"{self.url}/v1/vector-dbs/{vector_db_id}", timeout=60)
            if r.status_code >= 400:
                raise RuntimeError(
                    f"vector db {vector_db_id!r}: HTTP {r.status_code}: {r.text[:300]}"
                )
            return dict(r.json())
        return dict(self._call("vector-io", "get_vector_db", vector_db_id).model_dump())

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        request = EmbeddingsRequest(model_id=model, contents=texts)
        if self.url:
            return list(
                self._post("/v1/inference/embeddings", request.model_dump(exclude_none=True))[
                    "embeddings"
                ]
            )
        return list(self._call("inference", "embeddings", request).embeddings)

    def insert(self, vector_db_id: str, chunks: list[Chunk]) -> None:
        request = InsertChunksRequest(vector_db_id=vector_db_id, chunks=chunks)
        if self.url:
            self._post("/v1/vector-io/insert", request.model_dump(mode="json", exclude_none=True))
        else:
            self._call("vector-io", "insert_chunks", request)


# ---- reading documents -----------------------------------------------------------------


def _dataset(args: argparse.Namespace, done: set[str]) -> Any:
    import ray.data

    source = Path(args.source)
    if source.is_dir():
        ds = ray.data.read_binary_files(str(source), include_paths=True)

        def to_doc(row: dict[str, Any]) -> dict[str, Any]:
            path = Path(row["path"])
            try:
                doc_id = str(path.relative_to(source))
            except ValueError:
                doc_id = str(path)
            return {
                "document_id": doc_id,
                "bytes": row["bytes"],
                "filename": path.name,
                "text": None,
            }

        ds = ds.map(to_doc)
    else:
        if source.suffix in (".jsonl", ".json"):
            ds = ray.data.read_json(str(source), lines=source.suffix == ".jsonl")
        elif source.suffix == ".parquet":
            ds = ray.data.read_parquet(str(source))
        else:
            raise SystemExit(f"--source: expected a folder, .jsonl or .parquet, got {source}")
        text_col, id_col = args.text_column, args.id_column
        if text_col not in ds.schema().names:
            raise SystemExit(
                f"--text-column {text_col!r} is not a column of {source} ({ds.schema().names})"
            )

        def row_doc(row: dict[str, Any]) -> dict[str, Any]:
            doc_id = str(row[id_col]) if id_col else f"row-{abs(hash(str(row[text_col])))}"
            return {
                "document_id": doc_id,
                "bytes": None,
                "filename": None,
                "text": str(row[text_col]),
            }

        ds = ds.map(row_doc)
    if done:
        ds = ds.filter(lambda row: row["document_id"] not in done)
    return ds


def chunk_document(row: dict[str, Any], size: int, overlap: int) -> Iterator[dict[str, Any]]:
    """One row per chunk of the document in `row` (a document without text gives none)."""
    from stackray.providers.utils.documents import make_chunks, text_from_bytes

    if row.get("text") is not None:
        text = row["text"]
    else:
        text = text_from_bytes(
            row["bytes"], filename=row["filename"], document_id=row["document_id"]
        )
    chunks = make_chunks(
        row["document_id"], text, size, overlap, metadata={"source": row["document_id"]}
    )
    for n, chunk in enumerate(chunks):
        yield {
            "document_id": row["document_id"],
            "n_chunks": len(chunks),
            "chunk": chunk.model_dump_json(),
            "chunk_no": n,
        }


class Embedder:
    """A Ray Data worker embedding batches of chunks on the stack's inference deployment."""

    def __init__(self, app: str, url: str | None, model: str) -> None:
        self.stack = StackAccess(app, url)
        self.model = model

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        chunks = [Chunk.model_validate_json(c) for c in batch["chunk"]]
        from stackray.api.common import interleaved_content_as_str

        vectors = self.stack.embed(
            self.model, [interleaved_content_as_str(c.content) for c in chunks]
        )
        out = []
        for chunk, vector in zip(chunks, vectors, strict=True):
            chunk.embedding = [float(x) for x in vector]
            out.append(chunk.model_dump_json())
        return {**batch, "chunk": out}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    if not ray.is_initialized():
        ray.init(
            address=args.ray_address or os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False
        )
    ckpt = Path(args.checkpoint or f"{args.source.rstrip('/')}.ingest-{args.vector_db_id}.ckpt")
    done = set(ckpt.read_text().split("\n")) - {""} if ckpt.exists() else set()
    stack = StackAccess(args.app, args.url)
    vdb = stack.vector_db(args.vector_db_id)
    model = vdb["embedding_model"]

    started = time.monotonic()
    ds = _dataset(args, done)
    size, overlap = args.chunk_size, args.chunk_overlap
    ds = ds.flat_map(lambda row: list(chunk_document(row, size, overlap)))
    ds = ds.map_batches(
        Embedder,
        fn_constructor_args=(args.app, args.url, model),
        batch_size=args.batch_size,
        concurrency=args.workers,
        num_cpus=0.5,
    )
    seen: dict[str, int] = {}
    pending: list[Chunk] = []
    pending_docs: list[str] = []
    documents = chunks_total = 0

    def flush() -> None:
        nonlocal pending, pending_docs
        if pending:
            stack.insert(args.vector_db_id, pending)
        if pending_docs:
            with ckpt.open("a") as f:
                f.write("".join(d + "\n" for d in pending_docs))
        pending, pending_docs = [], []

    for batch in ds.iter_batches(batch_size=args.insert_batch_size, batch_format="numpy"):
        for doc_id, n_chunks, raw in zip(
            batch["document_id"], batch["n_chunks"], batch["chunk"], strict=True
        ):
            pending.append(Chunk.model_validate_json(raw))
            chunks_total += 1
            seen[doc_id] = seen.get(doc_id, 0) + 1
            if seen[doc_id] == int(n_chunks):
                pending_docs.append(str(doc_id))
                documents += 1
        if len(pending) >= args.insert_batch_size:
            flush()
            elapsed = time.monotonic() - started
            print(
                f"[ingest] {documents} documents, {chunks_total} chunks, "
                f"{chunks_total / elapsed:.1f} chunks/s",
                flush=True,
            )
    flush()
    elapsed = time.monotonic() - started
    summary = {
        "vector_db_id": args.vector_db_id,
        "documents": documents,
        "chunks": chunks_total,
        "skipped_documents": len(done),
        "seconds": round(elapsed, 2),
        "documents_per_s": round(documents / elapsed, 2) if elapsed else 0.0,
        "chunks_per_s": round(chunks_total / elapsed, 2) if elapsed else 0.0,
        "checkpoint": str(ckpt),
    }
    print("[ingest] done " + json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
