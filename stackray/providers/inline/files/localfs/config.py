from __future__ import annotations

from pydantic import Field

from stackray.providers.utils.files import FilesProviderConfig


class LocalFSFilesConfig(FilesProviderConfig):
    """Settings of the `inline::localfs` files provider."""

    storage_dir: str | None = Field(
        default=None,
        description="Directory holding the files' bytes (`~` is expanded, created if "
        "missing); default `files` in the provider's data directory. Every replica of the "
        "files deployment must see the same directory: on a multi-node cluster use a "
        "shared file system, or `remote::s3`.",
    )
