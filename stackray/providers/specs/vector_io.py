"""vector_io providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

_INLINE = "stackray.providers.inline.vector_io"
_REMOTE = "stackray.providers.remote.vector_io"

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.vector_io,
        provider_type="inline::faiss",
        impl=f"{_INLINE}.faiss.impl:FaissVectorIOProvider",
        config_class=f"{_INLINE}.faiss.config:FaissVectorIOConfig",
        pip_packages=("faiss-cpu",),
        # Its own deployment: one process owns each index (API replicas stay consistent),
        # and on a GPU cluster that process holds a GPU.
        model_server=True,
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
)
