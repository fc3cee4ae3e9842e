from __future__ import annotations

from pydantic import Field

from stackray.providers.utils.files import FilesProviderConfig
from stackray.runtime.storage import StoreConfig


class LocalFSFilesConfig(FilesProviderConfig):
    """Settings of the `inline::localfs` files provider."""

    storage_dir: str | None = Field(
        default=None,
        description="Directory holding the files' bytes (`~` is expanded, created if "
        "missing); default `files` in the provider's data directory. Every replica of the "
        "files deployment must see the same directory: on a multi-node cluster use a "
        "shared file system, or `remote::s3`.",
    )
    metadata_store: StoreConfig | None = Field(
        default=None,
        description="Store of the files' metadata (SQLite or PostgreSQL), as in Llama Stack "
        "0.2.12: the files router keeps its `files` table there; default the stack's "
        "metadata store.",
    )
