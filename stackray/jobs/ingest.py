"""Bulk ingestion into a vector db with Ray Data.

    ray job submit --working-dir . -- \
        python -m stackray.jobs.ingest --vector-db-id docs --source /data/corpus

Reads a folder (every file under it, recursively: text, markdown, HTML, PDF, JSON ...) or a
JSONL / Parquet dataset (one document per row: ``--text-column``, optional
``--id-column``), converts and chunks the documents by tokens in parallel Ray tasks, embeds
the chunks in batches of ``--batch-size`` through the gateway's inference router from
``--workers`` concurrent embedding workers (Ray Data actors), and inserts the pre-embedded
chunks into the vector db in batches of ``--insert-batch-size``. Ray Data shows its
progress bar; the job prints a line per insert batch and a JSON summary at the end.

Resumable: a document is appended to the checkpoint file (``--checkpoint``, default
``<source>.ingest-<vector_db_id>.ckpt``) once all its chunks are inserted; a re-run skips
the documents listed there (a folder's files are not even read). Chunk ids are stable
(document id and position), so a document interrupted half-way is written again whole,
replacing its chunks. A document that cannot be turned into text (an image, a broken PDF)
is reported and left out of the checkpoint; a document without text counts as done.

The stack is reached through its Serve deployment handles when the job runs on the
stack's Ray cluster (``--app``, default ``stackray``), or over HTTP with ``--url``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stackray.api.inference import EmbeddingsRequest, TextTruncation
from stackray.api.vector_io import Chunk, InsertChunksRequest
from stackray.jobs.ray_session import run_on_ray

DEFAULT_CHUNK_TOKENS = 512
MAX_INSERT_BATCH = 10_000  # the vector_io router's limit per insert
DATASET_SUFFIXES = (".jsonl", ".parquet")


class IngestError(RuntimeError):
    """The job cannot go on (unknown vector db, bad dataset, the stack refusing a call)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m stackray.jobs.ingest",
        description="Chunk, embed and insert a folder or dataset into a stackray vector db.",
    )
    p.add_argument("--vector-db-id", required=True, help="The (registered) vector db to fill.")
    p.add_argument("--source", required=True, help="A folder, or a .jsonl / .parquet dataset.")
    p.add_argument("--text-column", default="text", help="Dataset column holding the text.")
    p.add_argument(
        "--id-column",
        default=None,
        help="Dataset column holding the document id (default: a hash of the text).",
    )
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_TOKENS, help="Tokens per chunk.")
    p.add_argument(
        "--chunk-overlap", type=int, default=None, help="Token overlap (default: size/4)."
    )
    p.add_argument("--batch-size", type=int, default=64, help="Chunks per embedding call.")
    p.add_argument("--insert-batch-size", type=int, default=256, help="Chunks per insert call.")
    p.add_argument("--workers", type=int, default=2, help="Concurrent embedding workers.")
    p.add_argument(
        "--chunk-cpus",
        type=float,
        default=0.5,
        help="CPUs each read/chunk task asks Ray for (embedding workers ask for none).",
    )
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
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    if not 1 <= args.insert_batch_size <= MAX_INSERT_BATCH:
        p.error(f"--insert-batch-size must be between 1 and {MAX_INSERT_BATCH}")
    if args.chunk_cpus < 0:
        p.error("--chunk-cpus must not be negative")
    source = Path(args.source)
    if not source.exists():
        p.error(f"--source {args.source!r} does not exist")
    if source.is_file() and source.suffix not in DATASET_SUFFIXES:
        p.error(f"--source must be a folder, a .jsonl or a .parquet file, got {args.source!r}")
    if args.url and not args.url.startswith(("http://", "https://")):
        p.error(f"--url must be an http(s) URL, got {args.url!r}")
    return args


# ---- checkpoint ---------------------------------------------------------------------------


def checkpoint_path(args: argparse.Namespace) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    return Path(f"{str(args.source).rstrip('/')}.ingest-{args.vector_db_id}.ckpt")


def read_checkpoint(path: Path) -> set[str]:
    """The ids of the documents a previous run finished (one per line)."""
    if not path.exists():
        return set()
    return {line for line in path.read_text(encoding="utf-8").split("\n") if line}


def append_checkpoint(path: Path, document_ids: Iterable[str]) -> None:
    lines = "".join(f"{d}\n" for d in document_ids)
    if lines:
        with path.open("a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())


class Completion:
    """Counts the chunks of each document as they arrive (in any order, from any worker);
    `add` says when the last one of a document is there."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def add(self, document_id: str, n_chunks: int) -> bool:
        seen = self._seen.get(document_id, 0) + 1
        if seen >= n_chunks:
            self._seen.pop(document_id, None)
            return True
        self._seen[document_id] = seen
        return False

    @property
    def partial(self) -> int:
        """Documents with some, not all, chunks seen."""
        return len(self._seen)


# ---- talking to the stack -------------------------------------------------------------------


class StackAccess:
    """The three calls the job makes, over Serve handles or HTTP."""

    def __init__(self, app: str, url: str | None) -> None:
        self.app = app
        self.url = url.rstrip("/") if url else None
        self._handles: dict[str, Any] = {}
        self._http: Any = None

    def _call(self, deployment: str, method: str, arg: Any) -> Any:
        from ray import serve

        from stackray.runtime.errors import unwrap

        if deployment not in self._handles:
            self._handles[deployment] = serve.get_deployment_handle(deployment, app_name=self.app)
        try:
            return self._handles[deployment].call_api.remote(None, method, arg).result()
        except Exception as exc:
            original = unwrap(exc)
            raise IngestError(
                f"{deployment}.{method}: {type(original).__name__}: {original}"
            ) from exc

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        if self._http is None:
            self._http = httpx.Client(base_url=self.url or "", timeout=600)
        r = self._http.request(method, path, json=body)
        if r.status_code >= 400:
            raise IngestError(f"{method} {path}: HTTP {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    def vector_db(self, vector_db_id: str) -> dict[str, Any]:
        if self.url:
            return dict(self._request("GET", f"/v1/vector-dbs/{vector_db_id}"))
        return dict(self._call("vector-io", "get_vector_db", vector_db_id).model_dump())

    def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        request = EmbeddingsRequest(
            model_id=model, contents=texts, text_truncation=TextTruncation.end
        )
        if self.url:
            body = request.model_dump(mode="json", exclude_none=True)
            return list(self._request("POST", "/v1/inference/embeddings", body)["embeddings"])
        # The gateway's inference router reaches the embedding model's server.
        return list(self._call("gateway", "embeddings", request).embeddings)

    def insert(self, vector_db_id: str, chunks: list[Chunk]) -> None:
        request = InsertChunksRequest(vector_db_id=vector_db_id, chunks=chunks)
        if self.url:
            body = request.model_dump(mode="json", exclude_none=True)
            self._request("POST", "/v1/vector-io/insert", body)
        else:
            self._call("vector-io", "insert_chunks", request)


# ---- documents to chunk rows ---------------------------------------------------------------

# Every row after chunking has these columns. `status`: "chunk" (one chunk of a document:
# `chunk` is the Chunk's JSON), or one row for a whole document: "skipped" (in the
# checkpoint), "empty" (no text), "failed" (`error` says why).
COLUMNS = ("document_id", "n_chunks", "chunk", "status", "error")


def text_document_id(text: str) -> str:
    """The id of a dataset row without an id column: a hash of its text (stable across
    runs, so the checkpoint works)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def list_files(folder: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """The files under `folder`, recursively, sorted; hidden files and folders skipped."""
    excluded = {p.resolve() for p in exclude}
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.resolve() not in excluded
    )


def _marker(document_id: str, status: str, error: str = "") -> dict[str, Any]:
    return {
        "document_id": document_id,
        "n_chunks": 0,
        "chunk": "",
        "status": status,
        "error": error,
    }


def chunk_document(
    row: dict[str, Any], size: int, overlap: int, done: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The chunk rows of the document in `row` (``document_id`` and either ``text``, or
    ``bytes`` and ``filename``): one per chunk, or one marker row (see `COLUMNS`)."""
    from stackray.api.errors import StackError
    from stackray.providers.utils.documents import make_chunks, text_from_bytes

    document_id = str(row["document_id"])
    if document_id in done:
        return [_marker(document_id, "skipped")]
    metadata: dict[str, Any] = {"source": document_id}
    try:
        if row.get("text") is not None:
            text = str(row["text"])
        else:
            filename = str(row["filename"])
            metadata["filename"] = filename
            text = text_from_bytes(bytes(row["bytes"]), filename=filename, document_id=document_id)
        chunks = make_chunks(document_id, text, size, overlap, metadata=metadata)
    except StackError as exc:
        return [_marker(document_id, "failed", exc.message)]
    if not chunks:
        return [_marker(document_id, "empty")]
    return [
        {
            "document_id": document_id,
            "n_chunks": len(chunks),
            "chunk": chunk.model_dump_json(exclude_none=True),
            "status": "chunk",
            "error": "",
        }
        for chunk in chunks
    ]


class Embedder:
    """A Ray Data worker: embeds the chunks of a batch through the stack's gateway (its
    inference router, or the HTTP API) and puts the embeddings into their JSON."""

    def __init__(self, app: str, url: str | None, model: str) -> None:
        self.stack = StackAccess(app, url)
        self.model = model

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from stackray.api.common import interleaved_content_as_str

        out = [str(c) for c in batch["chunk"]]
        todo = [i for i, status in enumerate(batch["status"]) if status == "chunk"]
        chunks = [Chunk.model_validate_json(out[i]) for i in todo]
        if chunks:
            texts = [interleaved_content_as_str(c.content) for c in chunks]
            vectors = self.stack.embed(self.model, texts)
            if len(vectors) != len(chunks):
                raise IngestError(f"{len(chunks)} texts embedded into {len(vectors)} vectors")
            for i, chunk, vector in zip(todo, chunks, vectors, strict=True):
                chunk.embedding = [float(x) for x in vector]
                out[i] = chunk.model_dump_json(exclude_none=True)
        return {**batch, "chunk": np.array(out, dtype=object)}


def build_dataset(args: argparse.Namespace, done: set[str], ckpt: Path) -> tuple[Any, int, int]:
    """The Ray dataset of chunk rows (see `COLUMNS`) before embedding (None when every
    file is in the checkpoint), the number of documents (-1 for a dataset: unknown before
    reading it), and the number skipped without being read (a folder's files)."""
    import ray.data

    source = Path(args.source)
    frozen = frozenset(done)
    size, overlap = args.chunk_size, args.chunk_overlap
    cpus = args.chunk_cpus
    if source.is_dir():
        files = list_files(source, exclude=[ckpt])
        ids = {str(p.resolve()): str(p.relative_to(source)) for p in files}
        todo = [p for p in files if ids[str(p.resolve())] not in done]
        skipped = len(files) - len(todo)
        if not todo:
            return None, len(files), skipped
        ds = ray.data.read_binary_files(
            [str(p.resolve()) for p in todo], include_paths=True, num_cpus=cpus
        )

        def file_doc(row: dict[str, Any]) -> dict[str, Any]:
            path = str(row["path"])
            return {
                "document_id": ids.get(path, path),
                "bytes": row["bytes"],
                "filename": Path(path).name,
            }

        ds = ds.map(file_doc, num_cpus=cpus)
        total = len(files)
    else:
        if source.suffix == ".jsonl":
            ds = ray.data.read_json(str(source), lines=True, num_cpus=cpus)
        else:
            ds = ray.data.read_parquet(str(source), num_cpus=cpus)
        names = ds.schema().names
        text_col, id_col = args.text_column, args.id_column
        if text_col not in names:
            raise IngestError(f"--text-column {text_col!r} is not a column of {source} ({names})")
        if id_col is not None and id_col not in names:
            raise IngestError(f"--id-column {id_col!r} is not a column of {source} ({names})")

        def row_doc(row: dict[str, Any]) -> dict[str, Any]:
            text = row.get(text_col)
            # A missing value reads as None, or as NaN where the reader goes through pandas.
            text = "" if text is None or (isinstance(text, float) and text != text) else str(text)
            doc_id = str(row[id_col]) if id_col is not None else text_document_id(text)
            return {"document_id": doc_id, "text": text}

        ds = ds.map(row_doc, num_cpus=cpus)
        total, skipped = -1, 0

    def chunk_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
        return chunk_document(row, size, overlap, frozen)

    ds = ds.flat_map(chunk_rows, num_cpus=cpus)
    return ds, total, skipped


# ---- the job ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest `args.source` into `args.vector_db_id`; the summary (also printed)."""
    result: dict[str, Any] = run_on_ray(args, _run)
    return result


def _run(args: argparse.Namespace) -> dict[str, Any]:
    ckpt = checkpoint_path(args)
    done = read_checkpoint(ckpt)
    stack = StackAccess(args.app, args.url)
    model = stack.vector_db(args.vector_db_id)["embedding_model"]

    started = time.monotonic()
    ds, total, skipped = build_dataset(args, done, ckpt)
    documents = chunks_total = empty = 0
    failed: dict[str, str] = {}
    pending: list[Chunk] = []
    pending_docs: list[str] = []
    completion = Completion()
    of_total = f"/{total}" if total >= 0 else ""

    def flush() -> None:
        nonlocal pending, pending_docs
        if pending:
            stack.insert(args.vector_db_id, pending)
        # Only after the insert: a document in the checkpoint has all its chunks stored.
        append_checkpoint(ckpt, pending_docs)
        pending, pending_docs = [], []
        elapsed = max(time.monotonic() - started, 1e-9)
        print(
            f"[ingest] {documents + skipped}{of_total} documents ({skipped} skipped, "
            f"{len(failed)} failed), {chunks_total} chunks, {documents / elapsed:.1f} docs/s, "
            f"{chunks_total / elapsed:.1f} chunks/s",
            flush=True,
        )

    if ds is not None:
        ds = ds.map_batches(
            Embedder,
            fn_constructor_args=(args.app, args.url, model),
            batch_size=args.batch_size,
            batch_format="numpy",
            concurrency=args.workers,
            num_cpus=0,
        )
        batches = ds.iter_batches(batch_size=args.insert_batch_size, batch_format="numpy")
        for batch in batches:
            rows = zip(*(batch[c] for c in COLUMNS), strict=True)
            for doc_id, n_chunks, raw, status, error in rows:
                doc_id = str(doc_id)
                if status == "skipped":
                    skipped += 1
                elif status == "failed":
                    failed[doc_id] = str(error)
                    print(f"[ingest] {doc_id}: skipped, {error}", file=sys.stderr, flush=True)
                elif status == "empty":
                    empty += 1
                    documents += 1
                    pending_docs.append(doc_id)
                else:
                    pending.append(Chunk.model_validate_json(str(raw)))
                    chunks_total += 1
                    if completion.add(doc_id, int(n_chunks)):
                        documents += 1
                        pending_docs.append(doc_id)
            if len(pending) >= args.insert_batch_size:
                flush()
    flush()
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        "vector_db_id": args.vector_db_id,
        "documents": documents,
        "chunks": chunks_total,
        "skipped_documents": skipped,
        "empty_documents": empty,
        "failed_documents": failed,
        "seconds": round(elapsed, 3),
        "documents_per_s": round(documents / elapsed, 2) if elapsed else 0.0,
        "chunks_per_s": round(chunks_total / elapsed, 2) if elapsed else 0.0,
        "checkpoint": str(ckpt),
        "workers": args.workers,
    }
    print("[ingest] done " + json.dumps(summary), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except IngestError as exc:
        print(f"[ingest] error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 1 if summary["failed_documents"] else 0


if __name__ == "__main__":
    sys.exit(main())
