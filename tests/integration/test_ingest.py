"""The bulk ingestion job in handle mode against the shared Serve stack: Ray Data in this
process (connected to the stack's Ray), embeddings on the `inference` deployment, inserts
through the `vector-io` deployment; the result read back with `llama-stack-client`, and a
second run skipping every document from the checkpoint.

`ray job submit` needs Ray's dashboard (the job server), which the integration stack
starts without (`include_dashboard=False`), so the job's `run()` is called here directly;
docs/vector_io.md gives the `ray job submit` command."""

from __future__ import annotations

import json
from pathlib import Path

from stackray.jobs.ingest import parse_args, read_checkpoint, run

from .conftest import EMBEDDING_MODEL

DOCS = {
    "cats.txt": "Cats are small domesticated felines that purr and chase mice.",
    "guide/ray.md": "# Ray\n\nRay Serve scales Python model serving across a cluster.",
    "bread.html": "<html><body><p>Sourdough bread rises thanks to wild yeast.</p></body></html>",
}


def test_ingest_folder_with_handles_then_resume(stack, tmp_path: Path, capsys) -> None:
    client = stack.client()
    client.vector_dbs.register(vector_db_id="ingest-it", embedding_model=EMBEDDING_MODEL)
    corpus = tmp_path / "corpus"
    for name, text in DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    long_text = " ".join(f"Paragraph {i} talks about lighthouses and tides." for i in range(40))
    (corpus / "long.txt").write_text(long_text)
    argv = ["--vector-db-id", "ingest-it", "--source", str(corpus), "--chunk-size", "64"]
    argv += ["--batch-size", "8", "--insert-batch-size", "16", "--workers", "2"]

    summary = run(parse_args(argv))
    out = capsys.readouterr().out
    assert summary["documents"] == 4 and summary["failed_documents"] == {}
    assert summary["chunks"] > 4 and summary["skipped_documents"] == 0
    assert "[ingest] done " in out
    done_line = next(line for line in out.splitlines() if line.startswith("[ingest] done "))
    assert json.loads(done_line.removeprefix("[ingest] done "))["chunks"] == summary["chunks"]
    assert read_checkpoint(Path(summary["checkpoint"])) == {*DOCS, "long.txt"}

    r = client.vector_io.query(
        vector_db_id="ingest-it", query="how does sourdough rise?", params={"max_chunks": 1}
    )
    assert r.chunks[0].metadata["document_id"] == "bread.html"
    assert r.chunks[0].content == "Sourdough bread rises thanks to wild yeast."
    r = client.vector_io.query(
        vector_db_id="ingest-it", query="Ray Serve", params={"max_chunks": 1, "mode": "keyword"}
    )
    assert r.chunks[0].metadata["document_id"] == "guide/ray.md"
    everything = client.vector_io.query(
        vector_db_id="ingest-it",
        query="lighthouses",
        params={"max_chunks": 200, "score_threshold": -1.0},
    )
    assert len(everything.chunks) == summary["chunks"]

    again = run(parse_args(argv))
    assert again["skipped_documents"] == 4
    assert again["documents"] == 0 and again["chunks"] == 0
    everything = client.vector_io.query(
        vector_db_id="ingest-it",
        query="lighthouses",
        params={"max_chunks": 200, "score_threshold": -1.0},
    )
    assert len(everything.chunks) == summary["chunks"]
