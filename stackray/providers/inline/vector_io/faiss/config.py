from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
