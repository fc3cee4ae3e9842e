from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stackray.runtime.storage import PostgresStoreConfig, StoreConfig


class FaissVectorIOConfig(BaseModel):
    """Settings of the `inline::faiss` vector IO provider."""

    model_config = ConfigDict(extra="forbid")

    index_type: Literal["flat", "hnsw", "ivf"] = Field(
        default="flat",
        description="flat: exact cosine search; hnsw: graph ANN (fast at 100k+ chunks); "
        "ivf: inverted lists (trained once the collection reaches ivf_train_size).",
    )
    hnsw_m: int = Field(default=32, ge=4, le=256, description="HNSW links per node.")
    hnsw_ef_construction: int = Field(
        default=80, ge=8, description="HNSW candidate list size while building."
    )
    hnsw_ef_search: int = Field(
        default=128, ge=8, description="HNSW candidate list size while searching (recall vs speed)."
    )
    ivf_nlist: int = Field(default=256, ge=1, description="IVF inverted lists (clusters).")
    ivf_nprobe: int = Field(default=32, ge=1, description="IVF lists searched per query.")
    ivf_train_size: int | None = Field(
        default=None,
        ge=1,
        description="Chunks needed before the IVF index is trained (default 39 x ivf_nlist); "
        "until then search is exact.",
    )
    use_gpu: bool = Field(
        default=True,
        description="Move flat and IVF indexes to the GPU when faiss sees one "
        "(faiss.get_num_gpus() > 0); HNSW stays on the CPU.",
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="OpenMP threads for adding vectors and training (default: faiss's, one per "
        "core); a search of one query always uses one thread.",
    )
    snapshot_min_vectors: int = Field(
        default=1000,
        ge=1,
        description="Index snapshots are written once this many vectors (and at least a quarter "
        "of the snapshot) were added since the last one; the rest is replayed from the chunk "
        "store on load.",
    )
    db_path: str | None = Field(
        default=None,
        description="SQLite file holding chunks and vectors; default <provider data dir>/faiss.db.",
    )
    kvstore: StoreConfig | None = Field(
        default=None,
        description="Llama Stack 0.2.12's form of `db_path`: a SQLite store "
        "(`{type: sqlite, db_path}`) whose file holds the chunks and vectors. A PostgreSQL "
        "store or a namespace is refused (use remote::pgvector for vectors in PostgreSQL).",
    )

    @model_validator(mode="after")
    def _one_store(self) -> FaissVectorIOConfig:
        store = self.kvstore
        if store is None:
            return self
        if isinstance(store, PostgresStoreConfig):
            raise ValueError(
                "kvstore.type: inline::faiss keeps its chunks and vectors in a SQLite file; "
                "a postgres kvstore is not supported (use type sqlite, or the remote::pgvector "
                "provider for vectors in PostgreSQL)"
            )
        if store.namespace is not None:
            raise ValueError(
                "kvstore.namespace: inline::faiss keeps its own tables in the kvstore file; "
                "remove the namespace, or give the provider a db_path of its own"
            )
        if self.db_path is not None and self.db_path != store.db_path:
            raise ValueError(
                f"kvstore.db_path: {store.db_path!r} and db_path {self.db_path!r} name two "
                "files for the same data; give one of them"
            )
        return self

    def store_path(self) -> str | None:
        """The chunk store file the config names (`db_path` or `kvstore.db_path`), if any."""
        if self.kvstore is not None and not isinstance(self.kvstore, PostgresStoreConfig):
            return self.kvstore.db_path
        return self.db_path
