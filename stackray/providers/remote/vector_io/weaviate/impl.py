"""`remote::weaviate`: vector dbs as Weaviate collections, through weaviate-client v4.

One collection per vector db (own vectors, HNSW with cosine distance). An object per
chunk: its UUID derived from the chunk id, its vector, and properties ``chunk_id``,
``text`` (BM25-searchable), ``chunk`` (the chunk JSON, not indexed) and the chunk's
scalar metadata as ``md_<key>`` (added to the schema by Weaviate's auto-schema), so
`filters` become native Weaviate filters. Keyword search is Weaviate's own BM25; the
score threshold of vector search is Weaviate's distance cutoff (distance = 1 - cosine).

The cluster and API key come with each request (provider data ``weaviate_cluster_url``,
``weaviate_api_key``) or from the config; one client is kept per (cluster, key).
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlparse

from stackray.api.errors import BadRequestError, ProviderError, ServiceUnavailableError
from stackray.api.vector_io import Chunk, ScoredChunk, VectorDB
from stackray.providers.remote.vector_io.weaviate.config import WeaviateVectorIOConfig
from stackray.providers.utils.keyword import tokenize
from stackray.providers.utils.vector_db import (
    SyncClient,
    best_first,
    check_query_embedding,
    chunk_text,
    chunk_uuid,
    collection_name,
    db_name,
    dump_chunk,
    is_scalar,
    load_chunk,
    scalar_metadata,
    split_filters,
    unique_chunks,
)
from stackray.runtime.request_context import PROVIDER_DATA_HEADER, current_provider_data

_PREFIX = "Vdb_"  # Weaviate collection names start with a capital letter
_MD = "md_"
_SAFE_KEY = re.compile(r"^[_0-9A-Za-z]+$")
_CLOUD_SUFFIXES = (".weaviate.cloud", ".weaviate.network", ".wcs.api.weaviate.io")


def _native(key: str, value: Any) -> bool:
    return bool(_SAFE_KEY.match(key)) and is_scalar(value)


def _properties(chunk_id: str, chunk: Chunk, text: str) -> dict[str, Any]:
    props: dict[str, Any] = {"chunk_id": chunk_id, "text": text, "chunk": dump_chunk(chunk)}
    for key, value in scalar_metadata(chunk.metadata).items():
        if _SAFE_KEY.match(key):
            props[f"{_MD}{key}"] = value
    return props


class WeaviateVectorIO:
    """Vector dbs in the collections of a Weaviate cluster."""

    def __init__(self, config: WeaviateVectorIOConfig, deps: dict[Any, Any], context: Any) -> None:
        self.config = config
        self._clients: dict[tuple[str, str | None], Any] = {}
        self._clients_lock = threading.Lock()
        self._sync = SyncClient(serialize=False)

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await self._sync.run(client.close)

    # -- connection ------------------------------------------------------------------

    def _target(self) -> tuple[str, str | None]:
        data = current_provider_data() or {}
        url = data.get("weaviate_cluster_url") or self.config.cluster_url
        key = data.get("weaviate_api_key") or self.config.api_key
        if not url:
            raise BadRequestError(
                "remote::weaviate needs the cluster: pass weaviate_cluster_url (and "
                f"weaviate_api_key) in the {PROVIDER_DATA_HEADER} header, or set cluster_url "
                "in the provider config",
                field=PROVIDER_DATA_HEADER,
            )
        return str(url), (str(key) if key else None)

    def _connect(self, url: str, api_key: str | None) -> Any:
        import weaviate
        from weaviate.classes.init import Auth

        auth = Auth.api_key(api_key) if api_key else None
        parsed = urlparse(url if "://" in url else f"https://{url}")
        host = parsed.hostname or ""
        cloud = host.endswith(_CLOUD_SUFFIXES)
        if cloud and auth is None:
            raise BadRequestError(
                f"Weaviate Cloud needs an API key: pass weaviate_api_key in the {PROVIDER_DATA_HEADER} header",
                field=PROVIDER_DATA_HEADER,
            )
        try:
            if cloud and auth is not None:
                return weaviate.connect_to_weaviate_cloud(
                    cluster_url=parsed.geturl(), auth_credentials=auth
                )
            secure = parsed.scheme == "https"
            return weaviate.connect_to_custom(
                http_host=host,
                http_port=parsed.port or (443 if secure else 8080),
                http_secure=secure,
                grpc_host=host,
                grpc_port=self.config.grpc_port,
                grpc_secure=secure,
                auth_credentials=auth,
            )
        except Exception as e:  # unreachable cluster, refused key, ...
            raise ServiceUnavailableError(f"cannot connect to Weaviate at {url}: {e}") from None

    def _client(self, target: tuple[str, str | None]) -> Any:
        with self._clients_lock:
            client = self._clients.get(target)
            if client is None:
                client = self._connect(*target)
                self._clients[target] = client
            return client

    async def _run(self, fn: Any, *args: Any) -> Any:
        """Run `fn(client, *args)` in a thread with the client of this request's cluster."""
        target = self._target()  # read the request's provider data on the event loop
        return await self._sync.run(lambda: fn(self._client(target), *args))

    # -- collections -----------------------------------------------------------------

    def _create(self, client: Any, name: str) -> None:
        from weaviate.classes.config import (
            Configure,
            DataType,
            Property,
            Tokenization,
            VectorDistances,
        )

        if client.collections.exists(name):
            return
        client.collections.create(
            name,
            vector_config=Configure.Vectors.self_provided(
                vector_index_config=Configure.VectorIndex.hnsw(
                    distance_metric=VectorDistances.COSINE
                )
            ),
            properties=[
                Property(
                    name="chunk_id",
                    data_type=DataType.TEXT,
                    tokenization=Tokenization.FIELD,
                    index_searchable=False,
                ),
                Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
                Property(
                    name="chunk",
                    data_type=DataType.TEXT,
                    index_filterable=False,
                    index_searchable=False,
                ),
            ],
        )

    async def register_vector_db(self, vector_db: VectorDB) -> None:
        await self._run(self._create, db_name(vector_db, _PREFIX))

    async def unregister_vector_db(self, vector_db_id: str) -> None:
        name = collection_name(vector_db_id, _PREFIX)

        def drop(client: Any) -> None:
            if client.collections.exists(name):
                client.collections.delete(name)

        await self._run(drop)

    async def insert_chunks(self, vector_db: VectorDB, chunks: list[Chunk]) -> None:
        from weaviate.classes.data import DataObject

        items = unique_chunks(vector_db, chunks)
        if not items:
            return
        objects = [
            DataObject(
                properties=_properties(cid, chunk, chunk_text(chunk)),
                uuid=chunk_uuid(cid),
                vector=list(chunk.embedding or []),
            )
            for cid, chunk in items
        ]
        name = db_name(vector_db, _PREFIX)

        def insert(client: Any) -> None:
            self._create(client, name)
            from weaviate.exceptions import WeaviateBaseError

            # An object whose UUID exists already is replaced.
            try:
                result = client.collections.use(name).data.insert_many(objects)
            except WeaviateBaseError as e:
                raise ProviderError(f"Weaviate refused the chunks: {e}") from None
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise ProviderError(
                    f"Weaviate refused {len(result.errors)} of {len(objects)} chunks: {first.message}"
                )

        await self._run(insert)

    async def delete_chunks(self, vector_db: VectorDB, chunk_ids: list[str]) -> None:
        from weaviate.classes.query import Filter

        if not chunk_ids:
            return
        name = db_name(vector_db, _PREFIX)
        uuids = [chunk_uuid(cid) for cid in chunk_ids]

        def delete(client: Any) -> None:
            client.collections.use(name).data.delete_many(where=Filter.by_id().contains_any(uuids))

        await self._run(delete)

    # -- queries ---------------------------------------------------------------------

    @staticmethod
    def _filter(native: dict[str, Any]) -> Any:
        from weaviate.classes.query import Filter

        if not native:
            return None
        conditions = [Filter.by_property(f"{_MD}{k}").equal(v) for k, v in native.items()]
        return conditions[0] if len(conditions) == 1 else Filter.all_of(conditions)

    @staticmethod
    def _search(collection: Any, method: str, post: dict[str, Any], k: int, **kwargs: Any) -> Any:
        """Run a query; a filter on a metadata key that no chunk has is refused by Weaviate
        (the collection has no such property) and matches nothing."""
        from weaviate.exceptions import WeaviateQueryError

        # Filters Weaviate cannot evaluate are checked here, over every candidate.
        limit = k if not post else max(k, collection.aggregate.over_all().total_count or 0)
        try:
            return getattr(collection.query, method)(limit=limit, **kwargs).objects
        except WeaviateQueryError as e:
            if "no such prop" in str(e):
                return []
            raise ProviderError(f"Weaviate refused the query: {e}") from None

    async def query_vector(
        self,
        vector_db: VectorDB,
        embedding: list[float],
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        check_query_embedding(vector_db, embedding)
        from weaviate.classes.query import MetadataQuery

        native, post = split_filters(filters, _native)
        name = db_name(vector_db, _PREFIX)
        if k <= 0:
            return []

        def query(client: Any) -> list[ScoredChunk]:
            objects = self._search(
                client.collections.use(name),
                "near_vector",
                post,
                k,
                near_vector=embedding,
                distance=1.0 - score_threshold if score_threshold > -1.0 else None,
                filters=self._filter(native),
                return_metadata=MetadataQuery(distance=True),
                return_properties=["chunk"],
            )
            return [
                ScoredChunk(
                    chunk=load_chunk(o.properties["chunk"]),
                    score=1.0 - float(o.metadata.distance),
                )
                for o in objects
            ]

        return best_first(await self._run(query), k, score_threshold, post)

    async def query_keyword(
        self,
        vector_db: VectorDB,
        query: str,
        k: int,
        score_threshold: float,
        filters: dict[str, Any] | None = None,
    ) -> list[ScoredChunk]:
        from weaviate.classes.query import MetadataQuery

        if not tokenize(query) or k <= 0:
            return []
        native, post = split_filters(filters, _native)
        name = db_name(vector_db, _PREFIX)

        def search(client: Any) -> list[ScoredChunk]:
            objects = self._search(
                client.collections.use(name),
                "bm25",
                post,
                k,
                query=query,
                query_properties=["text"],
                filters=self._filter(native),
                return_metadata=MetadataQuery(score=True),
                return_properties=["chunk"],
            )
            return [
                ScoredChunk(chunk=load_chunk(o.properties["chunk"]), score=float(o.metadata.score))
                for o in objects
                if (o.metadata.score or 0.0) > 0.0
            ]

        return best_first(await self._run(search), k, score_threshold, post)
