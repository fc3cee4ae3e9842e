"""The bulk ingestion job (`stackray.jobs.ingest`): arguments, chunking rows, the
checkpoint, and a whole run over HTTP (`--url`) against the gateway on loopback (real
MiniLM embeddings, faiss) with a local Ray for Ray Data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackray.api.vector_io import Chunk
from stackray.jobs import ingest
from stackray.jobs.ingest import (
    Completion,
    append_checkpoint,
    checkpoint_path,
    chunk_document,
    list_files,
    parse_args,
    read_checkpoint,
    text_document_id,
)
from tests.unit.providers.utils.test_documents import make_pdf

EMBEDDING = "all-MiniLM-L6-v2"


# ---- arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunk-size", "8"], "--chunk-size must be at least 16"),
        (["--chunk-size", "64", "--chunk-overlap", "64"], "--chunk-overlap must be between"),
        (["--chunk-overlap", "-1"], "--chunk-overlap must be between"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--insert-batch-size", "10001"], "--insert-batch-size must be between 1 and 10000"),
        (["--chunk-cpus", "-1"], "--chunk-cpus must not be negative"),
        (["--url", "localhost:8321"], "--url must be an http(s) URL"),
    ],
)
def test_bad_arguments_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--vector-db-id", "v", "--source", str(tmp_path), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_source_must_exist_and_be_a_folder_or_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--vector-db-id", "v", "--source", str(tmp_path / "missing")])
    assert "does not exist" in capsys.readouterr().err
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n")
    with pytest.raises(SystemExit):
        parse_args(["--vector-db-id", "v", "--source", str(csv)])
    assert "a folder, a .jsonl or a .parquet file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--source", str(tmp_path)])
    assert "--vector-db-id" in capsys.readouterr().err


def test_defaults(tmp_path: Path) -> None:
    args = parse_args(["--vector-db-id", "kb", "--source", str(tmp_path) + "/"])
    assert args.chunk_size == 512 and args.chunk_overlap == 128
    assert args.workers == 2 and args.url is None and args.app == "stackray"
    assert checkpoint_path(args) == Path(f"{tmp_path}.ingest-kb.ckpt")
    args = parse_args(["--vector-db-id", "kb", "--source", str(tmp_path), "--checkpoint", "c"])
    assert checkpoint_path(args) == Path("c")


# ---- chunking rows -------------------------------------------------------------------------

WORDS = " ".join(f"word{i}" for i in range(100))


def chunks_of(rows: list[dict[str, Any]]) -> list[Chunk]:
    assert {r["status"] for r in rows} == {"chunk"}
    return [Chunk.model_validate_json(r["chunk"]) for r in rows]


def test_chunk_document_text_row() -> None:
    rows = chunk_document({"document_id": "d1", "text": WORDS}, 40, 10)
    assert set(rows[0]) == set(ingest.COLUMNS)
    chunks = chunks_of(rows)
    assert len(chunks) == 3 and all(r["n_chunks"] == 3 for r in rows)
    assert chunks[0].content.startswith("word0 ") and chunks[-1].content.endswith("word99")
    assert chunks[1].content.startswith("word30 ")  # 10 tokens of overlap
    meta = chunks[0].metadata
    assert meta["document_id"] == "d1" and meta["source"] == "d1" and meta["chunk_index"] == 0
    assert len({c.metadata["chunk_id"] for c in chunks}) == 3
    # Stable ids: chunking again gives the same chunk ids (a re-run replaces, never adds).
    again = chunks_of(chunk_document({"document_id": "d1", "text": WORDS}, 40, 10))
    assert [c.metadata["chunk_id"] for c in again] == [c.metadata["chunk_id"] for c in chunks]


def test_chunk_document_html_and_pdf_files() -> None:
    html = b"<html><head><title>T</title><script>x()</script></head><body><p>Hello ray</p></body></html>"
    rows = chunk_document(
        {"document_id": "web/page.html", "bytes": html, "filename": "page.html"}, 64, 8
    )
    [chunk] = chunks_of(rows)
    assert chunk.content == "T\nHello ray"
    assert chunk.metadata["filename"] == "page.html"

    pdf = make_pdf(["Sourdough rises with wild yeast.", "Second page."])
    [chunk] = chunks_of(
        chunk_document({"document_id": "b.pdf", "bytes": pdf, "filename": "b.pdf"}, 64, 8)
    )
    assert "Sourdough rises with wild yeast." in chunk.content and "Second page." in chunk.content


def test_chunk_document_markers() -> None:
    [skipped] = chunk_document({"document_id": "d", "text": WORDS}, 40, 10, frozenset({"d"}))
    assert skipped["status"] == "skipped" and skipped["n_chunks"] == 0
    [empty] = chunk_document({"document_id": "e", "text": "  \n "}, 40, 10)
    assert empty["status"] == "empty"
    [failed] = chunk_document(
        {"document_id": "img.png", "bytes": b"\x89PNG\r\n\x00\x00", "filename": "img.png"}, 40, 10
    )
    assert failed["status"] == "failed" and "image/png" in failed["error"]
    [broken] = chunk_document(
        {"document_id": "x.pdf", "bytes": b"%PDF-1.4 garbage", "filename": "x.pdf"}, 40, 10
    )
    assert broken["status"] == "failed" and "not a readable PDF" in broken["error"]


def test_text_document_id_is_stable() -> None:
    assert text_document_id("abc") == text_document_id("abc") != text_document_id("abd")
    assert text_document_id("abc").startswith("sha256:")


# ---- checkpoint ------------------------------------------------------------------------------


def test_checkpoint_roundtrip(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.ckpt"
    assert read_checkpoint(ckpt) == set()
    append_checkpoint(ckpt, ["a", "dir/b.txt"])
    append_checkpoint(ckpt, [])
    append_checkpoint(ckpt, ["c"])
    assert read_checkpoint(ckpt) == {"a", "dir/b.txt", "c"}


def test_completion_counts_chunks_in_any_order() -> None:
    done = Completion()
    arrivals = [("a", 3), ("b", 1), ("a", 3), ("c", 2), ("a", 3), ("c", 2)]
    finished = [doc for doc, n in arrivals if done.add(doc, n)]
    assert finished == ["b", "a", "c"] and done.partial == 0
    assert not done.add("d", 2) and done.partial == 1


def test_list_files_skips_hidden_and_the_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("a.txt", "sub/b.md", ".hidden", ".git/config", "run.ckpt"):
        (tmp_path / name).write_text("x")
    files = list_files(tmp_path, exclude=[tmp_path / "run.ckpt"])
    assert [str(p.relative_to(tmp_path)) for p in files] == ["a.txt", "sub/b.md"]


# ---- a whole run over HTTP -------------------------------------------------------------------


class Served:
    def __init__(self, data_dir: Path) -> None:
        from stackray.deployments.gateway import create_gateway_app
        from stackray.runtime.config import parse_config
        from stackray.runtime.graph import build_local_stack
        from tests.unit.support.remote_servers import FakeService

        stack = parse_config(
            {
                "version": 2,
                "image_name": "ingest",
                "apis": ["inference", "vector_io"],
                "providers": {
                    "inference": [
                        {
                            "provider_id": "sentence-transformers",
                            "provider_type": "inline::sentence-transformers",
                            "config": {"num_threads": 2},
                        }
                    ],
                    "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
                },
                "models": [
                    {
                        "model_id": EMBEDDING,
                        "provider_id": "sentence-transformers",
                        "provider_model_id": "sentence-transformers/all-MiniLM-L6-v2",
                        "model_type": "embedding",
                    }
                ],
                "storage": {"data_dir": str(data_dir)},
            }
        )
        routers = asyncio.run(build_local_stack(stack))
        self.server = FakeService(lambda _svc: create_gateway_app(stack, routers)).start()
        self.url = self.server.url

    def client(self) -> Any:
        from llama_stack_client import LlamaStackClient

        return LlamaStackClient(base_url=self.url, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import ray

    s = Served(tmp_path_factory.mktemp("stack"))
    # A Ray another test connected to (some Ray APIs connect on first use) is not this
    # test's: start a known one.
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield s
    finally:
        ray.shutdown()
        s.server.stop()


TOPICS = {
    "bread": "Sourdough bread rises slowly thanks to wild yeast and lactic acid bacteria.",
    "rocket": "A rocket engine burns propellant to produce thrust in the vacuum of space.",
    "tea": "Green tea is brewed from the unoxidized leaves of the Camellia sinensis plant.",
}


def test_folder_over_http_then_resume(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = served.client()
    client.vector_dbs.register(vector_db_id="folder-kb", embedding_model=EMBEDDING)
    corpus = tmp_path / "corpus"
    (corpus / "nested").mkdir(parents=True)
    (corpus / "bread.txt").write_text(TOPICS["bread"] + " " + WORDS)
    (corpus / "nested" / "rocket.html").write_text(
        f"<html><body><h1>Rockets</h1><p>{TOPICS['rocket']}</p></body></html>"
    )
    (corpus / "tea.pdf").write_bytes(make_pdf([TOPICS["tea"]]))
    (corpus / "empty.txt").write_text("   ")
    (corpus / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    argv = ["--vector-db-id", "folder-kb", "--source", str(corpus), "--url", served.url]
    argv += ["--chunk-size", "32", "--chunk-overlap", "4", "--insert-batch-size", "4"]
    argv += ["--batch-size", "3", "--workers", "2"]

    summary = ingest.run(parse_args(argv))
    out = capsys.readouterr()
    # bread: 87 tokens -> 4 chunks of 32 with overlap 4; rocket 1, tea 1; empty counts as done.
    assert summary["documents"] == 4 and summary["empty_documents"] == 1
    assert summary["chunks"] == 6 and summary["skipped_documents"] == 0
    assert list(summary["failed_documents"]) == ["logo.png"]
    assert "[ingest] done " in out.out and "documents (0 skipped, 1 failed)" in out.out
    assert "logo.png: skipped" in out.err
    ckpt = Path(summary["checkpoint"])
    assert ckpt == Path(f"{corpus}.ingest-folder-kb.ckpt")
    assert read_checkpoint(ckpt) == {"bread.txt", "nested/rocket.html", "tea.pdf", "empty.txt"}

    for topic, name in (("tea", "tea.pdf"), ("rocket", "nested/rocket.html")):
        r = client.vector_io.query(
            vector_db_id="folder-kb", query=TOPICS[topic], params={"max_chunks": 1}
        )
        assert r.chunks[0].metadata["document_id"] == name
        assert TOPICS[topic] in r.chunks[0].content
    all_chunks = client.vector_io.query(
        vector_db_id="folder-kb", query="word50", params={"max_chunks": 100, "mode": "keyword"}
    )
    assert len({c.metadata["chunk_id"] for c in all_chunks.chunks}) >= 1

    # Again: every finished document is skipped unread; only the image is tried again.
    summary = ingest.run(parse_args(argv))
    assert summary["skipped_documents"] == 4 and summary["documents"] == 0
    assert summary["chunks"] == 0 and list(summary["failed_documents"]) == ["logo.png"]
    everything = client.vector_io.query(
        vector_db_id="folder-kb",
        query="bread tea rocket",
        params={"max_chunks": 50, "score_threshold": -1.0},
    )
    assert len(everything.chunks) == 6  # nothing was added twice


def test_jsonl_dataset_over_http(served: Served, tmp_path: Path) -> None:
    client = served.client()
    client.vector_dbs.register(vector_db_id="rows-kb", embedding_model=EMBEDDING)
    data = tmp_path / "rows.jsonl"
    rows = [{"key": k, "body": v} for k, v in TOPICS.items()] + [{"key": "none", "body": None}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["--vector-db-id", "rows-kb", "--source", str(data), "--url", served.url]

    with pytest.raises(ingest.IngestError, match="--text-column 'text' is not a column"):
        ingest.run(parse_args(base))
    ckpt = tmp_path / "rows.ckpt"
    argv = [*base, "--text-column", "body", "--id-column", "key", "--checkpoint", str(ckpt)]
    argv += ["--workers", "1"]
    summary = ingest.run(parse_args(argv))
    assert summary["documents"] == 4 and summary["chunks"] == 3 and summary["empty_documents"] == 1
    assert read_checkpoint(ckpt) == {"bread", "rocket", "tea", "none"}
    r = client.vector_io.query(
        vector_db_id="rows-kb", query="rocket thrust", params={"max_chunks": 1}
    )
    assert r.chunks[0].metadata["document_id"] == "rocket"

    again = ingest.run(parse_args(argv))
    assert again["skipped_documents"] == 4 and again["documents"] == 0 and again["chunks"] == 0


def test_unknown_vector_db_is_an_error(served: Served, tmp_path: Path) -> None:
    argv = ["--vector-db-id", "nope", "--source", str(tmp_path), "--url", served.url]
    with pytest.raises(ingest.IngestError, match="HTTP 404.*nope"):
        ingest.run(parse_args(argv))
    assert ingest.main(argv) == 2
