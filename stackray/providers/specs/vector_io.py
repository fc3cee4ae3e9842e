"""vector_io providers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from stackray.api.datatypes import Api
from stackray.providers.spec import DATABASE, INDEX, ProviderSpec

_INLINE = "stackray.providers.inline.vector_io"
_REMOTE = "stackray.providers.remote.vector_io"

# Embedded databases allow one process per data directory: each runs in its own
# deployment, called by every vector_io replica.
_EMBEDDED: dict[str, Any] = {
    "deployment": DATABASE,
    "serve_options": "stackray.providers.utils.vector_db:embedded_database_deployment",
}

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.vector_io,
        provider_type="inline::faiss",
        impl=f"{_INLINE}.faiss.impl:FaissVectorIOProvider",
        config_class=f"{_INLINE}.faiss.config:FaissVectorIOConfig",
        pip_packages=("faiss-cpu",),
        # Its own deployment: one process owns each index (API replicas stay consistent),
        # and on a GPU cluster that process holds a GPU.
        deployment=INDEX,
        description="FAISS indexes (flat, HNSW, IVF) with a SQLite chunk store; on a GPU when the cluster has one.",
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="inline::sqlite-vec",
        impl=f"{_INLINE}.sqlite_vec.impl:SQLiteVecVectorIOProvider",
        config_class=f"{_INLINE}.sqlite_vec.config:SQLiteVecVectorIOConfig",
        pip_packages=("sqlite-vec", "pysqlite3-binary"),
        description="sqlite-vec (exact cosine KNN) and FTS5 keyword search in one SQLite file.",
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="remote::pgvector",
        impl=f"{_REMOTE}.pgvector.impl:PGVectorVectorIOProvider",
        config_class=f"{_REMOTE}.pgvector.config:PGVectorVectorIOConfig",
        pip_packages=("psycopg[binary]",),
        description="PostgreSQL with the pgvector extension: HNSW or exact cosine search, tsvector keyword search.",
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="inline::chromadb",
        impl=f"{_INLINE}.chroma.impl:ChromaVectorIO",
        config_class=f"{_INLINE}.chroma.config:ChromaVectorIOConfig",
        pip_packages=("chromadb",),
        description="An embedded Chroma database in the provider's data directory.",
        **_EMBEDDED,
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="remote::chromadb",
        impl=f"{_REMOTE}.chroma.impl:ChromaRemoteVectorIO",
        config_class=f"{_REMOTE}.chroma.config:ChromaVectorIOConfig",
        pip_packages=("chromadb",),
        description="A Chroma server at a URL you give.",
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="inline::qdrant",
        impl=f"{_INLINE}.qdrant.impl:QdrantVectorIO",
        config_class=f"{_INLINE}.qdrant.config:QdrantVectorIOConfig",
        pip_packages=("qdrant-client",),
        description="qdrant-client's local mode, persisted in the provider's data directory.",
        **_EMBEDDED,
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="remote::qdrant",
        impl=f"{_REMOTE}.qdrant.impl:QdrantRemoteVectorIO",
        config_class=f"{_REMOTE}.qdrant.config:QdrantVectorIOConfig",
        pip_packages=("qdrant-client",),
        description="A Qdrant server or Qdrant Cloud.",
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="inline::milvus",
        impl=f"{_INLINE}.milvus.impl:MilvusVectorIO",
        config_class=f"{_INLINE}.milvus.config:MilvusVectorIOConfig",
        pip_packages=("pymilvus", "milvus-lite"),
        description="Milvus Lite: a Milvus database in one file under the provider's data directory.",
        **_EMBEDDED,
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="remote::milvus",
        impl=f"{_REMOTE}.milvus.impl:MilvusRemoteVectorIO",
        config_class=f"{_REMOTE}.milvus.config:MilvusVectorIOConfig",
        pip_packages=("pymilvus",),
        description="A Milvus server or Zilliz Cloud at a URI, with a token.",
    ),
    ProviderSpec(
        api=Api.vector_io,
        provider_type="remote::weaviate",
        impl=f"{_REMOTE}.weaviate.impl:WeaviateVectorIO",
        config_class=f"{_REMOTE}.weaviate.config:WeaviateVectorIOConfig",
        pip_packages=("weaviate-client",),
        description="A Weaviate cluster; its URL and API key come with each request's provider data.",
    ),
)


def _old_name(provider_type: str, of: str) -> ProviderSpec:
    """Llama Stack 0.2.12's deprecated name of a provider: the same provider, config and
    deployment under the other name."""
    spec = next(s for s in SPECS if s.provider_type == of)
    return replace(
        spec,
        provider_type=provider_type,
        description=f"The old name of {of} (Llama Stack 0.2.12 still accepts it).",
    )


SPECS += (
    _old_name("inline::meta-reference", "inline::faiss"),
    _old_name("inline::sqlite_vec", "inline::sqlite-vec"),
)
