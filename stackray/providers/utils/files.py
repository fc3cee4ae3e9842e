"""What every files provider shares: the upload size limit and file id checks."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_FILE_SIZE_BYTES = 100 * 1024 * 1024
"""100 MiB."""

DEFAULT_TTL_SECONDS = 365 * 24 * 3600
"""One year."""

_FILE_ID = re.compile(r"file-[0-9a-f]{32}")


class FilesProviderConfig(BaseModel):
    """Settings every files provider has."""

    model_config = ConfigDict(extra="forbid")

    max_file_size_bytes: int = Field(
        default=DEFAULT_MAX_FILE_SIZE_BYTES,
        ge=1,
        description="Largest file an upload may carry, in bytes (larger ones get a 413). "
        "Uploads travel whole between the gateway and the files deployment, so keep it "
        "well below a replica's memory.",
    )
    ttl_seconds: int = Field(
        default=DEFAULT_TTL_SECONDS,
        ge=1,
        description="How long a file is kept after its upload (its `expires_at`); an "
        "expired file is deleted the next time it is read or listed.",
    )


def check_file_id(file_id: str) -> str:
    """`file_id` if it is one the router makes; providers use ids as object names."""
    if not _FILE_ID.fullmatch(file_id):
        raise ValueError(f"not a file id: {file_id!r}")
    return file_id
