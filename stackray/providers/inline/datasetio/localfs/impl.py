"""`inline::localfs`: the rows of a dataset given inline or read from a URI.

URIs: a local path or ``file://`` URL, a ``data:`` URI, or an ``http(s)://`` URL, of a CSV,
JSON Lines, JSON, Parquet or Excel file (by extension, or by media type for ``data:``
and for a URL without a known extension). The source is read on every request (a file
that changes is seen at once); appended rows are kept in the store.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from stackray.api.datasetio import Dataset, RowsDataSource
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ProviderError
from stackray.providers.inline.datasetio.localfs.config import LocalFSDatasetIOConfig
from stackray.providers.utils.datasetio import AppendedRows
from stackray.providers.utils.tabular import (
    FORMATS,
    decode_data_uri,
    format_of_media_type,
    format_of_path,
    read_rows,
)
from stackray.runtime.resolver import ProviderContext

FIELD = "source.uri"


class LocalFSDatasetIO:
    """Reads inline rows, local files, data: URIs and http(s) files."""

    def __init__(
        self, config: LocalFSDatasetIOConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.context = context
        self.appended = AppendedRows(config, context)

    # ---- the protocol -------------------------------------------------------------------

    async def register_dataset(self, dataset: Dataset) -> Dataset:
        source = dataset.source
        if not isinstance(source, RowsDataSource):
            self._check_uri(source.uri)
        return dataset

    async def unregister_dataset(self, dataset: Dataset) -> None:
        self.appended.clear(dataset)

    async def read_rows(self, dataset: Dataset) -> list[dict[str, Any]]:
        source = dataset.source
        if isinstance(source, RowsDataSource):
            rows = list(source.rows)
        else:
            rows = await self.read_uri(source.uri)
        return rows + self.appended.rows(dataset)

    async def append_rows(self, dataset: Dataset, rows: list[dict[str, Any]]) -> None:
        self.appended.append(dataset, rows)

    # ---- sources ------------------------------------------------------------------------

    def _check_uri(self, uri: str) -> None:
        scheme = urlparse(uri).scheme.lower()
        if scheme in ("", "file"):
            self._local_path(uri)
            return
        if scheme in ("data", "http", "https"):
            return
        if scheme == "huggingface":
            raise BadRequestError(
                f"{uri!r} is a Hugging Face dataset: register it with the huggingface "
                "provider (remote::huggingface)",
                field=FIELD,
            )
        raise BadRequestError(
            f"unsupported URI scheme {scheme!r} in {uri!r}: use a local path, file://, "
            "data:, http:// or https://",
            field=FIELD,
        )

    def _local_path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme.lower() == "file":
            if parsed.netloc not in ("", "localhost"):
                raise BadRequestError(
                    f"{uri!r} names host {parsed.netloc!r}: file:// URIs name local files",
                    field=FIELD,
                )
            raw = unquote(parsed.path)
        else:
            raw = uri
        path = Path(os.path.expanduser(raw))
        if not path.is_absolute():
            raise BadRequestError(
                f"{uri!r} is a relative path: name the file by its absolute path", field=FIELD
            )
        allowed = self.config.allowed_dirs
        if allowed is not None:
            resolved = path.resolve()
            roots = [Path(os.path.expanduser(d)).resolve() for d in allowed]
            if not any(resolved.is_relative_to(root) for root in roots):
                raise BadRequestError(
                    f"{uri!r} is outside the directories this provider may read "
                    f"(allowed_dirs: {', '.join(map(str, roots)) or 'none'})",
                    field=FIELD,
                )
        return path

    async def read_uri(self, uri: str) -> list[dict[str, Any]]:
        self._check_uri(uri)
        scheme = urlparse(uri).scheme.lower()
        if scheme == "data":
            data, fmt = decode_data_uri(uri, FIELD)
            self._check_size(len(data), "the data: URI")
            return await asyncio.to_thread(read_rows, data, fmt, "the data: URI", FIELD)
        if scheme in ("http", "https"):
            data, fmt = await self._download(uri)
            return await asyncio.to_thread(read_rows, data, fmt, uri, FIELD)
        path = self._local_path(uri)
        file_format = format_of_path(path.name)
        if file_format is None:
            raise BadRequestError(
                f"cannot tell the format of {uri!r} from its extension (formats: "
                f"{', '.join(FORMATS)}; extensions .csv .tsv .jsonl .json .parquet .xlsx)",
                field=FIELD,
            )
        return await asyncio.to_thread(self._read_file, path, file_format, uri)

    def _read_file(self, path: Path, fmt: str, uri: str) -> list[dict[str, Any]]:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise BadRequestError(f"{uri!r}: no such file", field=FIELD) from None
        except OSError as e:
            raise BadRequestError(f"{uri!r} cannot be read: {e.strerror}", field=FIELD) from None
        if not path.is_file():
            raise BadRequestError(f"{uri!r} is not a file", field=FIELD)
        self._check_size(size, repr(uri))
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BadRequestError(f"{uri!r} cannot be read: {e.strerror}", field=FIELD) from None
        return read_rows(data, fmt, repr(uri), FIELD)

    def _check_size(self, size: int, what: str) -> None:
        if size > self.config.max_download_bytes:
            raise BadRequestError(
                f"{what} is {size} bytes; this provider reads at most "
                f"{self.config.max_download_bytes} (max_download_bytes)",
                field=FIELD,
            )

    async def _download(self, url: str) -> tuple[bytes, str]:
        pid = self.context.provider_id
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self.config.http_timeout_s, follow_redirects=True
                ) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code >= 400:
                    raise ProviderError(
                        f"downloading {url} answered HTTP {response.status_code}",
                        provider_id=pid,
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    self._check_size(size, url)
                    chunks.append(chunk)
                media_type = response.headers.get("content-type", "").split(";")[0]
        except httpx.TimeoutException:
            raise ProviderError(
                f"downloading {url} took longer than {self.config.http_timeout_s}s",
                provider_id=pid,
            ) from None
        except httpx.HTTPError as e:
            raise ProviderError(f"cannot download {url}: {e}", provider_id=pid) from None
        fmt = format_of_path(urlparse(url).path) or format_of_media_type(media_type)
        return b"".join(chunks), fmt
