"""DatasetIO providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.datasetio,
        provider_type="inline::localfs",
        impl="stackray.providers.inline.datasetio.localfs.impl:LocalFSDatasetIO",
        config_class="stackray.providers.inline.datasetio.localfs.config:LocalFSDatasetIOConfig",
        pip_packages=("pandas", "openpyxl"),
        description="Rows given inline, or read from a local file, a data: URI or an http(s) "
        "file (CSV, JSON Lines, JSON, Parquet, Excel).",
    ),
    ProviderSpec(
        api=Api.datasetio,
        provider_type="remote::huggingface",
        impl="stackray.providers.remote.datasetio.huggingface.adapter:HuggingfaceDatasetIO",
        config_class="stackray.providers.remote.datasetio.huggingface.config:HuggingfaceDatasetIOConfig",
        pip_packages=("datasets",),
        description="Datasets of the Hugging Face Hub (huggingface://datasets/<name>?split=...), "
        "read with the `datasets` library from its cache or the hub.",
    ),
)
