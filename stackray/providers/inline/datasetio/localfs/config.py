from __future__ import annotations

from pydantic import Field

from stackray.providers.utils.datasetio import DatasetIOProviderConfig


class LocalFSDatasetIOConfig(DatasetIOProviderConfig):
    """Settings of the `inline::localfs` datasetio provider."""

    allowed_dirs: list[str] | None = Field(
        default=None,
        description="Directories whose files a dataset's `uri` may name (`~` expanded); "
        "None: any file this process can read (as Llama Stack); []: no local files.",
    )
    http_timeout_s: float = Field(
        default=30.0, gt=0, description="Timeout of each http(s) download, in seconds."
    )
    max_download_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="Largest file read from a path, an http(s) URL or a data: URI.",
    )
