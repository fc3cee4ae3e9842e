"""`LocalFSFiles`: each file's bytes in one file of a directory, named by its id."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from stackray.api.errors import NotFoundError
from stackray.providers.inline.files.localfs.config import LocalFSFilesConfig
from stackray.providers.utils.files import check_file_id
from stackray.runtime.resolver import ProviderContext


class LocalFSFiles:
    """Files in a local directory. Writes go to a temporary file renamed into place, so a
    reader never sees half a file."""

    def __init__(self, config: LocalFSFilesConfig, deps: dict[Any, Any], context: ProviderContext):
        self.config = config
        if config.storage_dir:
            self.root = Path(config.storage_dir).expanduser()
        else:
            self.root = context.data_dir / "files"

    async def initialize(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, file_id: str) -> Path:
        return self.root / check_file_id(file_id)

    def _write(self, path: Path, content: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put_content(self, file_id: str, content: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(file_id), content)

    async def get_content(self, file_id: str) -> bytes:
        path = self._path(file_id)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFoundError(
                f"the content of file {file_id!r} is missing from {self.root}", field="file_id"
            ) from None

    async def delete_content(self, file_id: str) -> None:
        await asyncio.to_thread(self._path(file_id).unlink, missing_ok=True)

    async def health(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"files directory {self.root} is missing")
