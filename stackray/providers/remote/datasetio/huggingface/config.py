from __future__ import annotations

from pydantic import Field

from stackray.providers.utils.datasetio import DatasetIOProviderConfig


class HuggingfaceDatasetIOConfig(DatasetIOProviderConfig):
    """Settings of the `remote::huggingface` datasetio provider."""

    cache_dir: str | None = Field(
        default=None,
        description="The `datasets` library's cache directory (`~` expanded); default its "
        "own (HF_DATASETS_CACHE, ~/.cache/huggingface/datasets).",
    )
    local_dir: str | None = Field(
        default=None,
        description="A directory of datasets laid out as `<name>/` folders of data files "
        "(e.g. `llamastack/simpleqa/train.parquet`), read instead of the hub when a "
        "dataset's folder is there: for clusters without access to the hub.",
    )
    offline: bool = Field(
        default=False,
        description="Read datasets from the library's cache only, never asking the hub "
        "(as HF_HUB_OFFLINE does): a dataset not in the cache is a 502 at once instead of "
        "after the library's retries. For clusters without access to the hub.",
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="How long loading one dataset (from the cache or the hub) may take "
        "before the request fails with a 502.",
    )
    cached_datasets: int = Field(
        default=8,
        ge=0,
        description="Loaded datasets kept in memory per process (a hub dataset does not "
        "change for a registered split and revision); 0 loads on every request.",
    )
