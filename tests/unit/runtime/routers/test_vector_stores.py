"""OpenAI vector stores (on the vector_io router, reading files through the files API) and
the RAG tool (``builtin::rag`` in the tool runtime), driven by the real `openai` and
`llama-stack-client` SDKs over HTTP (the gateway on loopback), with the real embedding model in-process."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.remote_servers import FakeService

EMBEDDING = "all-MiniLM-L6-v2"

BREAD = "Sourdough bread rises slowly thanks to wild yeast and lactic acid bacteria."
ROCKETS = "A rocket engine burns propellant to produce thrust in the vacuum of space."
TEA = "Green tea is brewed from the unoxidized leaves of the Camellia sinensis plant."


def stack_config(data_dir: Path, docs_dir: Path) -> Any:
    return parse_config(
        {
            "version": 2,
            "image_name": "vs",
            "apis": ["inference", "vector_io", "files", "tool_runtime"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "sentence-transformers",
                        "provider_type": "inline::sentence-transformers",
                        "config": {"num_threads": 2},
                    }
                ],
                "vector_io": [
                    {"provider_id": "faiss", "provider_type": "inline::faiss"},
                    {"provider_id": "sqlite-vec", "provider_type": "inline::sqlite-vec"},
                ],
                "files": [{"provider_id": "localfs", "provider_type": "inline::localfs"}],
                "tool_runtime": [
                    {
                        "provider_id": "rag-runtime",
                        "provider_type": "inline::rag-runtime",
                        "config": {"allowed_dirs": [str(docs_dir)]},
                    }
                ],
            },
            "models": [
                {
                    "model_id": EMBEDDING,
                    "provider_id": "sentence-transformers",
                    "provider_model_id": "sentence-transformers/all-MiniLM-L6-v2",
                    "model_type": "embedding",
                }
            ],
            "tool_groups": [{"toolgroup_id": "builtin::rag", "provider_id": "rag-runtime"}],
            "storage": {"data_dir": str(data_dir)},
        }
    )


class Env:
    def __init__(self, data_dir: Path, docs_dir: Path) -> None:
        self.docs_dir = docs_dir
        stack = stack_config(data_dir, docs_dir)
        routers = asyncio.run(build_local_stack(stack))
        app = create_gateway_app(stack, routers)
        self.server = FakeService(lambda _svc: app).start()
        self.openai = openai.OpenAI(
            base_url=f"{self.server.url}/v1", api_key="unused", max_retries=0, timeout=60
        )

    def llama(self) -> Any:
        from llama_stack_client import LlamaStackClient

        return LlamaStackClient(base_url=self.server.url, max_retries=0, timeout=60)

    def close(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    docs = tmp_path_factory.mktemp("docs")
    e = Env(tmp_path_factory.mktemp("stack"), docs)
    yield e
    e.close()


def upload(env: Env, name: str, data: bytes) -> str:
    return env.openai.files.create(file=(name, data), purpose="assistants").id


def test_vector_store_lifecycle_with_the_openai_sdk(env: Env) -> None:
    bread = upload(env, "bread.txt", BREAD.encode())
    rockets = upload(env, "rockets.md", ROCKETS.encode())
    store = env.openai.vector_stores.create(name="kb", file_ids=[bread])
    assert store.id.startswith("vs_") and store.name == "kb"
    assert store.file_counts.completed == 1 and store.file_counts.total == 1
    assert store.status == "completed" and store.usage_bytes == len(BREAD)

    attached = env.openai.vector_stores.files.create(
        vector_store_id=store.id, file_id=rockets, attributes={"topic": "space"}
    )
    assert attached.status == "completed" and attached.vector_store_id == store.id

    page = env.openai.vector_stores.search(store.id, query="how does sourdough rise?")
    assert page.data[0].file_id == bread and page.data[0].filename == "bread.txt"
    assert "wild yeast" in page.data[0].content[0].text
    assert page.data[0].score > page.data[-1].score or len(page.data) == 1

    # Attribute filters: equality goes to the provider, comparison filters are applied here.
    only_space = env.openai.vector_stores.search(
        store.id, query="bread", filters={"type": "eq", "key": "topic", "value": "space"}
    )
    assert {r.file_id for r in only_space.data} == {rockets}
    not_space = env.openai.vector_stores.search(
        store.id, query="bread", filters={"type": "ne", "key": "topic", "value": "space"}
    )
    assert {r.file_id for r in not_space.data} == {bread}

    listed = env.openai.vector_stores.files.list(vector_store_id=store.id)
    assert {f.id for f in listed.data} == {bread, rockets}
    content = env.openai.vector_stores.files.content(vector_store_id=store.id, file_id=rockets)
    assert "propellant" in "".join(c.text for c in content)

    updated = env.openai.vector_stores.files.update(
        vector_store_id=store.id, file_id=bread, attributes={"topic": "food"}
    )
    assert updated.attributes == {"topic": "food"}
    food = env.openai.vector_stores.search(
        store.id, query="yeast", filters={"type": "eq", "key": "topic", "value": "food"}
    )
    assert [r.file_id for r in food.data] == [bread]

    env.openai.vector_stores.files.delete(vector_store_id=store.id, file_id=bread)
    after = env.openai.vector_stores.search(store.id, query="sourdough bread yeast")
    assert bread not in {r.file_id for r in after.data}
    assert env.openai.vector_stores.retrieve(store.id).file_counts.total == 1

    renamed = env.openai.vector_stores.update(store.id, name="kb2", metadata={"team": "a"})
    assert renamed.name == "kb2" and renamed.metadata == {"team": "a"}
    assert store.id in {s.id for s in env.openai.vector_stores.list().data}

    deleted = env.openai.vector_stores.delete(store.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        env.openai.vector_stores.retrieve(store.id)


def test_a_file_that_cannot_be_read_fails_with_the_reason(env: Env) -> None:
    store = env.openai.vector_stores.create(name="bad", extra_body={"provider_id": "sqlite-vec"})
    binary = upload(env, "blob.bin", bytes(range(256)) * 4)
    attached = env.openai.vector_stores.files.create(vector_store_id=store.id, file_id=binary)
    assert attached.status == "failed"
    assert attached.last_error is not None and "blob.bin" in attached.last_error.message
    # The client's file, not the stack's failure: OpenAI's code for it.
    assert attached.last_error.code == "unsupported_file"
    assert env.openai.vector_stores.retrieve(store.id).file_counts.failed == 1
    listed = env.openai.vector_stores.files.retrieve(vector_store_id=store.id, file_id=binary)
    assert listed.last_error is not None and listed.last_error.code == "unsupported_file"


def test_vector_store_errors_name_the_problem(env: Env) -> None:
    with pytest.raises(openai.NotFoundError):
        env.openai.vector_stores.search("vs_missing", query="x")
    store = env.openai.vector_stores.create(name="errors")
    with pytest.raises(openai.NotFoundError) as err:
        env.openai.vector_stores.files.create(vector_store_id=store.id, file_id="file-missing")
    assert "file-missing" in str(err.value)
    with pytest.raises(openai.BadRequestError) as bad:
        env.openai.vector_stores.search(store.id, query="   ")
    assert "query" in str(bad.value)


def test_rag_tool_insert_and_query(env: Env) -> None:
    client = env.llama()
    client.vector_dbs.register(vector_db_id="rag-db", embedding_model=EMBEDDING)
    (env.docs_dir / "tea.txt").write_text(TEA)
    html = "<html><body><h1>Rockets</h1><p>" + ROCKETS + "</p><script>x()</script></body></html>"
    client.tool_runtime.rag_tool.insert(
        vector_db_id="rag-db",
        chunk_size_in_tokens=64,
        documents=[
            {"document_id": "bread", "content": BREAD, "metadata": {"kind": "food"}},
            {
                "document_id": "rockets",
                "content": "data:text/html;base64," + base64.b64encode(html.encode()).decode(),
                "metadata": {},
            },
            {
                "document_id": "tea",
                "content": {"uri": f"file://{env.docs_dir / 'tea.txt'}"},
                "metadata": {},
            },
        ],
    )
    result = client.tool_runtime.rag_tool.query(
        content="What is green tea made from?",
        vector_db_ids=["rag-db"],
        query_config={"max_chunks": 2, "mode": "hybrid"},
    )
    text = "".join(item.text for item in result.content)  # type: ignore[union-attr]
    assert "Camellia sinensis" in text
    assert result.metadata["document_ids"][0] == "tea"
    assert "x()" not in text  # the HTML's script is not text

    # The same search as the knowledge_search tool of builtin::rag.
    tools = client.tools.list(toolgroup_id="builtin::rag")
    assert [t.identifier for t in tools] == ["knowledge_search"]
    invoked = client.tool_runtime.invoke_tool(
        tool_name="knowledge_search",
        kwargs={"query": "sourdough yeast", "vector_db_ids": ["rag-db"]},
    )
    assert "wild yeast" in str(invoked.content)


def test_rag_tool_refuses_files_outside_the_allowed_dirs(env: Env, tmp_path: Path) -> None:
    from llama_stack_client import BadRequestError

    client = env.llama()
    client.vector_dbs.register(vector_db_id="rag-private", embedding_model=EMBEDDING)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    with pytest.raises(BadRequestError):
        client.tool_runtime.rag_tool.insert(
            vector_db_id="rag-private",
            chunk_size_in_tokens=64,
            documents=[
                {"document_id": "s", "content": {"uri": f"file://{secret}"}, "metadata": {}}
            ],
        )
    with pytest.raises(BadRequestError) as err:
        client.tool_runtime.rag_tool.query(
            content="x", vector_db_ids=["rag-private"], query_config={"chunk_template": "{oops}"}
        )
    assert "chunk_template" in str(err.value)


# ---- behaviours Llama Stack 0.2.12 clients rely on ------------------------------------------


def test_chunks_inserted_with_vector_io_come_back_from_vector_store_search(env: Env) -> None:
    store = env.openai.vector_stores.create(name="chunks")
    client = env.llama()
    client.vector_io.insert(
        vector_db_id=store.id,
        chunks=[
            {"content": BREAD, "metadata": {"document_id": "doc-bread", "topic": "food"}},
            {"content": ROCKETS, "metadata": {"document_id": "doc-rockets", "topic": "space"}},
        ],
    )
    page = env.openai.vector_stores.search(store.id, query="how does sourdough rise?")
    assert page.data[0].content[0].text == BREAD
    assert page.data[0].attributes is not None
    assert page.data[0].attributes["document_id"] == "doc-bread"
    assert page.data[0].attributes["topic"] == "food"
    space = env.openai.vector_stores.search(
        store.id, query="bread", filters={"type": "eq", "key": "topic", "value": "space"}
    )
    assert [r.content[0].text for r in space.data] == [ROCKETS]
    assert space.data[0].attributes["document_id"] == "doc-rockets"


def test_a_vector_query_returns_the_nearest_chunk_however_far_unless_a_threshold(
    env: Env,
) -> None:
    client = env.llama()
    client.vector_dbs.register(
        vector_db_id="far", embedding_model=EMBEDDING, embedding_dimension=384
    )
    # A precomputed embedding unlike any text's: its similarity to a query is near zero.
    vector = [1.0 if i % 2 == 0 else -1.0 for i in range(384)]
    client.vector_io.insert(
        vector_db_id="far",
        chunks=[{"content": "lonely chunk", "metadata": {"document_id": "d"}, "embedding": vector}],
    )
    for query in ("how does sourdough rise?", "rocket thrust", "x"):
        hits = client.vector_io.query(vector_db_id="far", query=query)
        assert [c.content for c in hits.chunks] == ["lonely chunk"]
    strict = client.vector_io.query(
        vector_db_id="far", query="rocket thrust", params={"score_threshold": 0.9}
    )
    assert strict.chunks == []


def test_a_vector_store_created_with_a_missing_file_records_it_as_failed(env: Env) -> None:
    tea = upload(env, "tea.txt", TEA.encode())
    store = env.openai.vector_stores.create(name="partly", file_ids=[tea, "file-missing"])
    assert store.file_counts.total == 2
    assert store.file_counts.completed == 1 and store.file_counts.failed == 1
    files = {f.id: f for f in env.openai.vector_stores.files.list(vector_store_id=store.id).data}
    assert files[tea].status == "completed"
    assert files["file-missing"].status == "failed"
    assert files["file-missing"].last_error is not None
    assert "file-missing" in files["file-missing"].last_error.message
    hits = env.openai.vector_stores.search(store.id, query="green tea leaves")
    assert hits.data[0].file_id == tea
