"""Conformance of the vector database providers: Chroma (embedded and a real `chroma run`
server), Qdrant (local mode; the remote adapter against ``location: ':memory:'`` since no
Qdrant server runs here) and Milvus (Milvus Lite; the remote adapter given a Milvus Lite
URI). Every provider is built through the registry and resolver as a stack would build
it. Weaviate, which cannot run here, is covered in `test_vector_io_weaviate.py`.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError
from stackray.api.vector_io import Chunk, VectorDB
from stackray.runtime.config import Provider, parse_config
from stackray.runtime.resolver import instantiate_provider


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`), stopped after the module."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    path = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = (path / "server.log").open("wb")
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        # No telemetry: the server talks to nothing but the tests.
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False", "CHROMA_ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited: {(path / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chroma run did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# (id, provider_type, config factory(tmp_path, chroma_url), persistent across restart)
CASES: list[tuple[str, str, Any, bool]] = [
    ("inline-chromadb", "inline::chromadb", lambda tmp, url: {}, True),
    (
        "inline-chromadb-db_path",
        "inline::chromadb",
        lambda tmp, url: {"db_path": str(tmp / "own-chroma")},
        True,
    ),
    ("remote-chromadb", "remote::chromadb", lambda tmp, url: {"url": url}, False),
    ("inline-qdrant", "inline::qdrant", lambda tmp, url: {}, True),
    ("remote-qdrant", "remote::qdrant", lambda tmp, url: {"location": ":memory:"}, False),
    ("inline-milvus", "inline::milvus", lambda tmp, url: {}, True),
    (
        "remote-milvus",
        "remote::milvus",
        lambda tmp, url: {"uri": str(tmp / "remote-milvus.db"), "token": ""},
        True,
    ),
]


class Harness:
    """One provider built by the resolver, with a way to restart it on the same data."""

    def __init__(self, provider_type: str, config: dict[str, Any], data_dir: Path) -> None:
        self.provider = Provider(provider_id="vdb", provider_type=provider_type, config=config)
        self.stack = parse_config(
            {
                "version": 2,
                "image_name": "vdbtest",
                "apis": ["vector_io"],
                "providers": {"vector_io": [self.provider.model_dump()]},
                "storage": {"data_dir": str(data_dir)},
            }
        )
        self.impl: Any = None

    def start(self) -> Any:
        self.impl = run(instantiate_provider(Api.vector_io, self.provider, self.stack))
        return self.impl

    def stop(self) -> None:
        if self.impl is not None:
            run(self.impl.shutdown())
            self.impl = None

    def restart(self) -> Any:
        self.stop()
        return self.start()


def _harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    _, provider_type, make_config, _ = request.param
    url = request.getfixturevalue("chroma_server") if provider_type == "remote::chromadb" else ""
    h = Harness(provider_type, make_config(tmp_path, url), tmp_path / "data")
    h.start()
    yield h
    # Leave nothing behind on the shared Chroma server.
    if h.impl is not None:
        run(h.impl.unregister_vector_db(f"db-{tmp_path.name}"))
        run(h.impl.unregister_vector_db(f"other-{tmp_path.name}"))
    h.stop()


@pytest.fixture(params=CASES, ids=[c[0] for c in CASES])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    yield from _harness(request, tmp_path)


PERSISTENT = [c for c in CASES if c[3]]


@pytest.fixture(params=PERSISTENT, ids=[c[0] for c in PERSISTENT])
def persistent_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """The providers whose data lives in files of their own (not a server's, not memory)."""
    yield from _harness(request, tmp_path)


def _db(name: str, dim: int = 4) -> VectorDB:
    return VectorDB(
        identifier=name,
        provider_resource_id=name,
        provider_id="vdb",
        embedding_model="tiny",
        embedding_dimension=dim,
    )


def _norm(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(_norm(a), _norm(b), strict=True))


def _chunk(cid: str, text: str, emb: list[float], **meta: Any) -> Chunk:
    return Chunk(
        content=text,
        metadata={"chunk_id": cid, "document_id": f"doc-{cid}", **meta},
        embedding=emb,
    )


CHUNKS = [
    _chunk("a", "The quick brown fox jumps over the lazy dog", [1, 0, 0, 0], lang="en", n=1),
    _chunk(
        "b", "A fox is a small wild animal, a fox hunts at night", [0.9, 0.1, 0, 0], lang="en", n=2
    ),
    _chunk("c", "Der Hund schläft im Garten", [0, 1, 0, 0], lang="de", n=3, public=True),
    _chunk("d", "Ray Serve deploys Python models", [0, 0, 1, 0], lang="en", n=4, tags=["x", "y"]),
]
QUERY = [1.0, 0.05, 0.0, 0.0]


def _load(h: Harness, tmp_path: Path) -> tuple[Harness, VectorDB]:
    db = _db(f"db-{tmp_path.name}")
    run(h.impl.register_vector_db(db))
    run(h.impl.register_vector_db(db))  # idempotent
    run(h.impl.insert_chunks(db, CHUNKS))
    return h, db


@pytest.fixture()
def loaded(harness: Harness, tmp_path: Path) -> tuple[Harness, VectorDB]:
    return _load(harness, tmp_path)


def _ids(hits: list[Any]) -> list[str]:
    return [h.chunk.metadata["chunk_id"] for h in hits]


def test_vector_query_orders_by_cosine_similarity(loaded):
    h, db = loaded
    hits = run(h.impl.query_vector(db, QUERY, 10, -1.0))
    assert _ids(hits) == ["a", "b", "c", "d"]
    for hit, chunk in zip(hits, [CHUNKS[0], CHUNKS[1], CHUNKS[2], CHUNKS[3]], strict=True):
        assert hit.score == pytest.approx(_cos(QUERY, chunk.embedding or []), abs=1e-4)
    # The chunk comes back as inserted (its embedding stays in the database).
    first = hits[0].chunk
    assert first.content == CHUNKS[0].content
    assert first.metadata == CHUNKS[0].metadata
    assert first.embedding is None


def test_vector_query_k_and_threshold(loaded):
    h, db = loaded
    assert _ids(run(h.impl.query_vector(db, QUERY, 2, -1.0))) == ["a", "b"]
    hits = run(h.impl.query_vector(db, QUERY, 10, 0.5))
    assert _ids(hits) == ["a", "b"]
    assert all(hit.score >= 0.5 for hit in hits)
    assert run(h.impl.query_vector(db, [0, 0, 0, 1], 10, 0.1)) == []


def test_keyword_query_ranks_by_bm25(loaded):
    h, db = loaded
    hits = run(h.impl.query_keyword(db, "fox", 10, 0.0))
    # "b" names the fox twice in a text of similar length: it ranks first.
    assert _ids(hits) == ["b", "a"]
    assert hits[0].score > hits[1].score > 0
    assert _ids(run(h.impl.query_keyword(db, "FOX", 1, 0.0))) == ["b"]
    assert _ids(run(h.impl.query_keyword(db, "python models", 10, 0.0))) == ["d"]
    assert run(h.impl.query_keyword(db, "zebra", 10, 0.0)) == []
    assert run(h.impl.query_keyword(db, "fox", 10, hits[0].score + 1)) == []


def test_metadata_filters(loaded):
    h, db = loaded
    en = run(h.impl.query_vector(db, QUERY, 10, -1.0, {"lang": "en"}))
    assert _ids(en) == ["a", "b", "d"]
    assert _ids(run(h.impl.query_vector(db, QUERY, 10, -1.0, {"lang": "en", "n": 2}))) == ["b"]
    assert _ids(run(h.impl.query_vector(db, QUERY, 10, -1.0, {"public": True}))) == ["c"]
    assert run(h.impl.query_vector(db, QUERY, 10, -1.0, {"lang": "fr"})) == []
    assert run(h.impl.query_vector(db, QUERY, 10, -1.0, {"missing": "x"})) == []
    # A value the databases cannot match natively (a list) is checked on the hits.
    assert _ids(run(h.impl.query_vector(db, QUERY, 10, -1.0, {"tags": ["x", "y"]}))) == ["d"]
    assert _ids(run(h.impl.query_vector(db, QUERY, 1, -1.0, {"lang": "de"}))) == ["c"]
    assert _ids(run(h.impl.query_keyword(db, "fox", 10, 0.0, {"n": 1}))) == ["a"]
    assert run(h.impl.query_keyword(db, "fox", 10, 0.0, {"lang": "de"})) == []
    assert _ids(run(h.impl.query_keyword(db, "python", 10, 0.0, {"tags": ["x", "y"]}))) == ["d"]


def test_same_chunk_id_replaces(loaded):
    h, db = loaded
    new = _chunk("a", "A cat sleeps on the mat", [0, 0, 0, 1], lang="en", n=9)
    run(h.impl.insert_chunks(db, [new]))
    hits = run(h.impl.query_vector(db, [0, 0, 0, 1], 10, 0.5))
    assert _ids(hits) == ["a"]
    assert hits[0].chunk.content == "A cat sleeps on the mat"
    assert hits[0].chunk.metadata["n"] == 9
    assert len(run(h.impl.query_vector(db, QUERY, 10, -1.0))) == 4
    assert _ids(run(h.impl.query_keyword(db, "fox", 10, 0.0))) == ["b"]
    assert _ids(run(h.impl.query_keyword(db, "cat", 10, 0.0))) == ["a"]
    # Within one batch, the last chunk with an id wins.
    run(
        h.impl.insert_chunks(
            db, [_chunk("e", "one", [0, 1, 1, 0]), _chunk("e", "two", [0, 1, 1, 0])]
        )
    )
    hits = run(h.impl.query_vector(db, [0, 1, 1, 0], 1, 0.9))
    assert [hit.chunk.content for hit in hits] == ["two"]


def test_delete_chunks(loaded):
    h, db = loaded
    run(h.impl.delete_chunks(db, ["a", "c", "not-there"]))
    assert _ids(run(h.impl.query_vector(db, QUERY, 10, -1.0))) == ["b", "d"]
    assert _ids(run(h.impl.query_keyword(db, "fox", 10, 0.0))) == ["b"]
    run(h.impl.delete_chunks(db, []))


def test_vector_dbs_are_separate_and_unregister_deletes_data(loaded, tmp_path):
    h, db = loaded
    other = _db(f"other-{tmp_path.name}")
    run(h.impl.register_vector_db(other))
    run(h.impl.insert_chunks(other, [_chunk("z", "fox in another db", [1, 0, 0, 0])]))
    assert _ids(run(h.impl.query_vector(other, QUERY, 10, -1.0))) == ["z"]
    assert "z" not in _ids(run(h.impl.query_keyword(db, "fox", 10, 0.0)))

    run(h.impl.unregister_vector_db(db.identifier))
    run(h.impl.unregister_vector_db(db.identifier))  # no error when already gone
    run(h.impl.register_vector_db(db))
    assert run(h.impl.query_vector(db, QUERY, 10, -1.0)) == []
    assert run(h.impl.query_keyword(db, "fox", 10, 0.0)) == []
    assert _ids(run(h.impl.query_vector(other, QUERY, 10, -1.0))) == ["z"]


def test_data_survives_restart(persistent_harness, tmp_path):
    h, db = _load(persistent_harness, tmp_path)
    before_v = run(h.impl.query_vector(db, QUERY, 10, -1.0))
    before_k = run(h.impl.query_keyword(db, "fox", 10, 0.0))
    impl = h.restart()
    after_v = run(impl.query_vector(db, QUERY, 10, -1.0))
    assert _ids(after_v) == _ids(before_v)
    assert [x.score for x in after_v] == pytest.approx([x.score for x in before_v], abs=1e-5)
    after_k = run(impl.query_keyword(db, "fox", 10, 0.0))
    assert _ids(after_k) == _ids(before_k)
    assert [x.score for x in after_k] == pytest.approx([x.score for x in before_k], rel=1e-4)
    # Writes after the restart update the keyword statistics too.
    run(impl.insert_chunks(db, [_chunk("f", "fox fox fox", [0, 0, 1, 1])]))
    assert _ids(run(impl.query_keyword(db, "fox", 1, 0.0))) == ["f"]


def test_bad_chunks_and_queries_are_refused_before_anything_is_written(loaded):
    h, db = loaded
    good = _chunk("g", "good chunk", [0, 1, 1, 1])
    with pytest.raises(BadRequestError) as e:
        run(h.impl.insert_chunks(db, [good, Chunk(content="x", metadata={"chunk_id": "x"})]))
    assert e.value.field == "chunks[1].embedding"
    with pytest.raises(BadRequestError, match="3 dimensions; vector db .* has 4") as e:
        run(h.impl.insert_chunks(db, [good, _chunk("y", "short", [1, 0, 0])]))
    assert e.value.field == "chunks[1].embedding"
    assert len(run(h.impl.query_vector(db, QUERY, 10, -1.0))) == 4  # "g" was not written
    with pytest.raises(BadRequestError, match="query embedding has 2 dimensions") as e:
        run(h.impl.query_vector(db, [1, 0], 10, -1.0))
    assert e.value.field == "query"


def test_remote_chroma_talks_to_the_server(chroma_server, tmp_path):
    """The remote adapter's collections live in the server: a second client sees them."""
    import chromadb

    h = Harness("remote::chromadb", {"url": chroma_server}, tmp_path / "data")
    impl = h.start()
    db = _db("seen-by-server")
    run(impl.register_vector_db(db))
    run(impl.insert_chunks(db, CHUNKS[:2]))
    host, port = chroma_server.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port))
    names = {c.name for c in client.list_collections()}
    from stackray.providers.utils.vector_db import db_name

    assert db_name(db) in names
    assert client.get_collection(db_name(db)).count() == 2
    run(impl.unregister_vector_db(db.identifier))
    assert db_name(db) not in {c.name for c in client.list_collections()}
    assert not (tmp_path / "data" / "providers").exists()  # nothing written locally


def test_remote_qdrant_config_takes_one_address():
    from pydantic import ValidationError

    from stackray.providers.remote.vector_io.qdrant.config import QdrantVectorIOConfig

    assert QdrantVectorIOConfig(url="http://q:6333", api_key="k").url == "http://q:6333"
    with pytest.raises(ValidationError, match="only one of location, url, host"):
        QdrantVectorIOConfig(url="http://q:6333", host="q")


def test_milvus_lite_is_reached_without_keepalive_pings(tmp_path):
    # Milvus Lite's server answers pymilvus's default 10 s pings with GOAWAY
    # "too_many_pings" (a gRPC log line per idle spell): the channel sends none.
    from stackray.providers.inline.vector_io.milvus.impl import GRPC_OPTIONS

    h = Harness("inline::milvus", {}, tmp_path / "data")
    impl = h.start()
    try:
        options = impl._client._get_connection()._grpc_options
        assert options == GRPC_OPTIONS
        assert options["grpc.keepalive_time_ms"] >= 5 * 60 * 1000
        assert options["grpc.keepalive_permit_without_calls"] is False
        run(impl.register_vector_db(_db("kept")))  # and the channel works
        assert run(impl.query_vector(_db("kept"), [1.0, 0.0, 0.0, 0.0], 1, -1.0)) == []
    finally:
        h.stop()
