"""`remote::weaviate` against the loopback Weaviate wire endpoint (`weaviate_wire`).

No Weaviate server can run here. What runs for real: the provider, weaviate-client v4
itself (connection set-up, REST schema calls, gRPC batch/search/delete/aggregate with
their protobuf encoding and decoding), and the provider's translation both ways: the
requests the client sends are checked field by field, and the search replies are
Weaviate's own protobuf messages. What does not run: Weaviate's ranking, filtering and
storage (the endpoint answers with the replies the tests queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ProviderError
from stackray.api.vector_io import Chunk, VectorDB
from stackray.providers.utils.vector_db import chunk_uuid, db_name
from stackray.runtime.config import Provider, parse_config
from stackray.runtime.request_context import PROVIDER_DATA_HEADER, RequestContext, use_context
from stackray.runtime.resolver import instantiate_provider
from tests.unit.support.weaviate_wire import GrpcError, WeaviateWire, search_reply


@pytest.fixture(scope="module")
def _wire() -> Iterator[WeaviateWire]:
    wire = WeaviateWire().start()
    yield wire
    wire.stop()


@pytest.fixture()
def wire(_wire: WeaviateWire, monkeypatch: pytest.MonkeyPatch) -> WeaviateWire:
    import weaviate.connect.v4

    # The client asks PyPI for its latest version on connect (a best-effort warning):
    # keep that on the loopback endpoint too.
    monkeypatch.setattr(
        weaviate.connect.v4, "PYPI_PACKAGE_URL", f"{_wire.url}/pypi/weaviate-client/json"
    )
    _wire.clear()
    _wire.collections.clear()
    _wire.batch_errors.clear()
    _wire.object_count = 0
    return _wire


def _provider(wire: WeaviateWire, tmp_path: Any, **config: Any) -> Any:
    provider = Provider(
        provider_id="weaviate",
        provider_type="remote::weaviate",
        config={"grpc_port": wire.grpc_port, **config},
    )
    stack = parse_config(
        {
            "version": 2,
            "image_name": "wv",
            "apis": ["vector_io"],
            "providers": {"vector_io": [provider.model_dump()]},
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    return asyncio.run(instantiate_provider(Api.vector_io, provider, stack))


@pytest.fixture()
def provider(wire: WeaviateWire, tmp_path: Any) -> Iterator[Any]:
    impl = _provider(wire, tmp_path)
    yield impl
    asyncio.run(impl.shutdown())


def run(coro: Any, url: str | None = None, key: str | None = "wv-key") -> Any:
    """Run `coro` in a request whose provider data names the cluster and key."""
    data = {"weaviate_cluster_url": url, "weaviate_api_key": key} if url else None
    with use_context(RequestContext(provider_data=data)):
        return asyncio.run(coro)


DB = VectorDB(
    identifier="docs", provider_id="weaviate", embedding_model="tiny", embedding_dimension=3
)
NAME = db_name(DB, "Vdb_")
A = Chunk(
    content="the quick brown fox",
    metadata={"chunk_id": "a", "lang": "en", "n": 1, "public": True, "tags": ["x"]},
    embedding=[1.0, 0.0, 0.0],
)
B = Chunk(
    content="a fox hunts", metadata={"chunk_id": "b", "lang": "de"}, embedding=[0.0, 1.0, 0.0]
)


def test_register_creates_a_cosine_collection_once(wire, provider):
    run(provider.register_vector_db(DB), wire.url)
    run(provider.register_vector_db(DB), wire.url)
    posts = [r for r in wire.rest_requests if r[0] == "POST"]
    assert len(posts) == 1
    _, path, headers, body = posts[0]
    assert path == "/v1/schema"
    assert headers["authorization"] == "Bearer wv-key"
    assert body["class"] == NAME and NAME.startswith("Vdb_")
    vector = body["vectorConfig"]["default"]
    assert vector["vectorizer"] == {"none": {}}
    assert vector["vectorIndexType"] == "hnsw"
    assert vector["vectorIndexConfig"]["distance"] == "cosine"
    props = {p["name"]: p for p in body["properties"]}
    assert props["text"]["tokenization"] == "word"
    assert props["chunk_id"]["tokenization"] == "field"
    assert props["chunk"]["indexSearchable"] is False
    # One connection (meta read once) serves every call of the same cluster and key.
    assert [r[1] for r in wire.rest_requests].count("/v1/meta") == 1


def test_insert_sends_objects_with_uuid_vector_and_properties(wire, provider):
    dup = A.model_copy(update={"content": "replaced fox"})
    run(provider.insert_chunks(DB, [A, B, dup]), wire.url)
    (batch,) = wire.grpc_calls("BatchObjects")
    objects = {o.uuid: o for o in batch.objects}
    assert set(objects) == {chunk_uuid("a"), chunk_uuid("b")}  # same id: last one wins
    a = objects[chunk_uuid("a")]
    assert a.collection == NAME
    assert np.frombuffer(a.vector_bytes, dtype="<f4").tolist() == [1.0, 0.0, 0.0]
    props = a.properties.non_ref_properties.fields
    assert props["chunk_id"].string_value == "a"
    assert props["text"].string_value == "replaced fox"
    assert props["md_lang"].string_value == "en"
    assert props["md_n"].WhichOneof("kind") in {"int_value", "number_value"}
    assert props["md_public"].bool_value is True
    assert "md_tags" not in props  # not a scalar: filtered on the hits instead
    assert Chunk.model_validate_json(props["chunk"].string_value).content == "replaced fox"
    assert wire.collections == {NAME}  # created on first insert


def test_insert_errors_are_reported(wire, provider):
    wire.batch_errors[0] = "vector lengths don't match"
    with pytest.raises(ProviderError, match="vector lengths don't match"):
        run(provider.insert_chunks(DB, [A]), wire.url)  # all failed
    with pytest.raises(ProviderError, match=r"1 of 2 chunks: vector lengths don't match"):
        run(provider.insert_chunks(DB, [A, B]), wire.url)  # some failed


def test_vector_query_request_and_scores(wire, provider):
    wire.queue_search(search_reply(NAME, [(A, 0.1), (B, 0.25)], "distance"))
    hits = run(provider.query_vector(DB, [1.0, 0.2, 0.0], 5, 0.5, {"lang": "en"}), wire.url)
    assert [h.chunk.metadata["chunk_id"] for h in hits] == ["a", "b"]
    assert [h.score for h in hits] == pytest.approx([0.9, 0.75])
    assert hits[0].chunk.content == A.content and hits[0].chunk.embedding is None
    (search,) = wire.grpc_calls("Search")
    assert search.collection == NAME
    assert search.limit == 5
    assert search.near_vector.distance == pytest.approx(0.5)  # the threshold, as a distance
    vec = search.near_vector.vectors[0].vector_bytes
    assert np.frombuffer(vec, dtype="<f4").tolist() == pytest.approx([1.0, 0.2, 0.0])
    assert search.metadata.distance is True
    assert list(search.properties.non_ref_properties) == ["chunk"]
    assert search.filters.target.property == "md_lang"
    assert search.filters.value_text == "en"

    # No threshold: no distance cutoff sent; two filters are combined with AND.
    wire.clear()
    wire.queue_search(search_reply(NAME, [(A, 0.1)], "distance"))
    run(provider.query_vector(DB, [1.0, 0.0, 0.0], 2, -1.0, {"lang": "en", "n": 1}), wire.url)
    (search,) = wire.grpc_calls("Search")
    assert not search.near_vector.HasField("distance")
    assert search.filters.operator == search.filters.OPERATOR_AND
    assert {f.target.property for f in search.filters.filters} == {"md_lang", "md_n"}


def test_keyword_query_uses_weaviate_bm25(wire, provider):
    wire.queue_search(search_reply(NAME, [(B, 1.7), (A, 0.9), (A, 0.0)], "score"))
    hits = run(provider.query_keyword(DB, "fox", 10, 1.0), wire.url)
    assert [h.chunk.metadata["chunk_id"] for h in hits] == ["b"]
    assert hits[0].score == pytest.approx(1.7)
    (search,) = wire.grpc_calls("Search")
    assert search.bm25_search.query == "fox"
    assert list(search.bm25_search.properties) == ["text"]
    assert search.metadata.score is True
    wire.clear()
    assert run(provider.query_keyword(DB, "  ?! ", 10, 0.0), wire.url) == []
    assert wire.grpc_calls("Search") == []  # nothing to search for: no call


def test_filters_weaviate_cannot_evaluate_are_applied_to_all_candidates(wire, provider):
    wire.object_count = 40
    wire.queue_search(search_reply(NAME, [(A, 0.1), (B, 0.2)], "distance"))
    hits = run(provider.query_vector(DB, [1.0, 0.0, 0.0], 1, -1.0, {"tags": ["x"]}), wire.url)
    assert [h.chunk.metadata["chunk_id"] for h in hits] == ["a"]
    assert len(wire.grpc_calls("Aggregate")) == 1
    (search,) = wire.grpc_calls("Search")
    assert search.limit == 40 and not search.HasField("filters")


def test_filter_on_an_unknown_property_matches_nothing(wire, provider):
    wire.queue_search(
        GrpcError(
            grpc.StatusCode.UNKNOWN,
            f"no such prop with name 'md_missing' found in class '{NAME}' in the schema. "
            "Check your schema files for which properties in this class are available",
        )
    )
    assert run(provider.query_vector(DB, [1.0, 0.0, 0.0], 3, -1.0, {"missing": 1}), wire.url) == []
    wire.queue_search(GrpcError(grpc.StatusCode.INTERNAL, "shard is read-only"))
    with pytest.raises(ProviderError, match="shard is read-only"):
        run(provider.query_keyword(DB, "fox", 3, 0.0), wire.url)


def test_delete_chunks_and_unregister(wire, provider):
    run(provider.insert_chunks(DB, [A]), wire.url)
    run(provider.delete_chunks(DB, ["a", "zz"]), wire.url)
    (delete,) = wire.grpc_calls("BatchDelete")
    assert delete.collection == NAME
    assert delete.filters.target.property == "_id"
    assert list(delete.filters.value_text_array.values) == [chunk_uuid("a"), chunk_uuid("zz")]
    run(provider.unregister_vector_db(DB.identifier), wire.url)
    assert ("DELETE", f"/v1/schema/{NAME}") in [(r[0], r[1]) for r in wire.rest_requests]
    assert wire.collections == set()
    wire.clear()
    run(provider.unregister_vector_db(DB.identifier), wire.url)  # already gone: no error
    assert [r[0] for r in wire.rest_requests] == ["GET"]


def test_cluster_comes_from_provider_data_or_config(wire, provider, tmp_path):
    with pytest.raises(BadRequestError) as e:
        run(provider.register_vector_db(DB))
    assert e.value.field == PROVIDER_DATA_HEADER
    assert "weaviate_cluster_url" in e.value.message
    # Another key is another client, sending that key.
    run(provider.register_vector_db(DB), wire.url, key="other-key")
    assert wire.rest_requests[-1][2]["authorization"] == "Bearer other-key"
    assert [r[1] for r in wire.rest_requests].count("/v1/meta") == 1
    # With cluster_url in the config, requests need no provider data.
    configured = _provider(wire, tmp_path, cluster_url=wire.url, api_key="cfg-key")
    try:
        run(configured.register_vector_db(DB))
        assert wire.rest_requests[-1][2]["authorization"] == "Bearer cfg-key"
    finally:
        asyncio.run(configured.shutdown())


def test_unreachable_cluster_is_a_503(provider):
    from stackray.api.errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError, match="cannot connect to Weaviate"):
        run(provider.register_vector_db(DB), "http://127.0.0.1:9")


def test_weaviate_cloud_needs_a_key(provider):
    with pytest.raises(BadRequestError, match="weaviate_api_key") as e:
        run(provider.register_vector_db(DB), "abc123.c0.europe-west3.gcp.weaviate.cloud", key=None)
    assert e.value.field == PROVIDER_DATA_HEADER


def test_wrong_dimensions_are_refused_before_any_call(wire, provider):
    with pytest.raises(BadRequestError, match="2 dimensions") as e:
        run(
            provider.insert_chunks(DB, [A, B.model_copy(update={"embedding": [1.0, 0.0]})]),
            wire.url,
        )
    assert e.value.field == "chunks[1].embedding"
    with pytest.raises(BadRequestError) as e:
        run(provider.query_vector(DB, [1.0], 3, -1.0), wire.url)
    assert e.value.field == "query"
    assert wire.grpc_requests == []
