"""`remote::huggingface`: datasets of the Hugging Face Hub, read with the `datasets` library.

A source is ``huggingface://datasets/<name>?split=<split>`` (``name``, ``revision``,
``data_dir`` and ``data_files`` may be given too; ``split`` defaults to ``train``);
``huggingface://<name>?...`` is read the same way. The library reads its cache or the hub;
a dataset found in `local_dir` is read from there instead; with `offline` only the
cache is read. A hub that cannot be reached,
or does not answer within `timeout_s`, is a 502 naming the hub and the dataset: the
request never hangs (the loading thread is left to finish on its own).
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from stackray.api.datasetio import Dataset, RowsDataSource
from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ProviderError
from stackray.providers.remote.datasetio.huggingface.config import HuggingfaceDatasetIOConfig
from stackray.providers.utils.datasetio import AppendedRows
from stackray.providers.utils.tabular import json_safe
from stackray.runtime.resolver import ProviderContext

FIELD = "source.uri"
PARAMS = ("split", "name", "revision", "data_dir", "data_files")


def parse_hf_uri(uri: str) -> tuple[str, dict[str, str]]:
    """The dataset name and the `load_dataset` arguments of a ``huggingface://`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "huggingface":
        raise BadRequestError(
            f"{uri!r} is not a huggingface:// URI (huggingface://datasets/<name>?split=...)",
            field=FIELD,
        )
    if parsed.netloc == "datasets":
        name = parsed.path.strip("/")
    else:
        name = (parsed.netloc + parsed.path).strip("/")
    if not name or ".." in name.split("/"):
        raise BadRequestError(
            f"{uri!r} names no dataset: use huggingface://datasets/<name>?split=<split>",
            field=FIELD,
        )
    params: dict[str, str] = {}
    for key, values in parse_qs(parsed.query, keep_blank_values=True).items():
        if key not in PARAMS:
            raise BadRequestError(
                f"{uri!r}: unknown parameter {key!r} (parameters: {', '.join(PARAMS)})",
                field=FIELD,
            )
        if len(values) != 1 or not values[0]:
            raise BadRequestError(f"{uri!r}: parameter {key!r} needs one value", field=FIELD)
        params[key] = values[0]
    params.setdefault("split", "train")
    return name, params


class HuggingfaceDatasetIO:
    """Reads Hugging Face datasets (cache, hub or `local_dir`)."""

    def __init__(
        self, config: HuggingfaceDatasetIOConfig, deps: dict[Api, Any], context: ProviderContext
    ) -> None:
        self.config = config
        self.context = context
        self.appended = AppendedRows(config, context)
        self._loaded: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        # Loads run on threads of their own: one stuck on an unanswering hub (it cannot
        # be cancelled) then holds none of the threads the rest of the process uses.
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hf-datasets")

    async def register_dataset(self, dataset: Dataset) -> Dataset:
        if isinstance(dataset.source, RowsDataSource):
            raise BadRequestError(
                "the huggingface provider reads huggingface:// URIs; register inline rows "
                "with the localfs provider",
                field="source",
            )
        parse_hf_uri(dataset.source.uri)
        return dataset

    async def unregister_dataset(self, dataset: Dataset) -> None:
        self.appended.clear(dataset)

    async def read_rows(self, dataset: Dataset) -> list[dict[str, Any]]:
        await self.register_dataset(dataset)
        assert not isinstance(dataset.source, RowsDataSource)
        return await self.load(dataset.source.uri) + self.appended.rows(dataset)

    async def append_rows(self, dataset: Dataset, rows: list[dict[str, Any]]) -> None:
        self.appended.append(dataset, rows)

    async def load(self, uri: str) -> list[dict[str, Any]]:
        name, params = parse_hf_uri(uri)
        key = f"{name}?{sorted(params.items())}"
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return list(self._loaded[key])
        try:
            loop = asyncio.get_running_loop()
            rows = await asyncio.wait_for(
                loop.run_in_executor(self._threads, self._load, name, params),
                self.config.timeout_s,
            )
        except asyncio.TimeoutError:
            raise ProviderError(
                f"the Hugging Face Hub ({_endpoint()}) did not provide dataset {name!r} "
                f"within {self.config.timeout_s}s (timeout_s)",
                provider_id=self.context.provider_id,
            ) from None
        if self.config.cached_datasets:
            self._loaded[key] = rows
            while len(self._loaded) > self.config.cached_datasets:
                self._loaded.popitem(last=False)
        return list(rows)

    def _local_copy(self, name: str) -> Path | None:
        if self.config.local_dir is None:
            return None
        path = Path(os.path.expanduser(self.config.local_dir)) / name
        return path if path.is_dir() else None

    def _load(self, name: str, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            import datasets
        except ImportError:
            raise ProviderError(
                "the huggingface provider needs the `datasets` package (pip install datasets)",
                provider_id=self.context.provider_id,
            ) from None
        if self.config.offline:
            # The `datasets` library checks this at each load; only it reads the setting
            # (model loaders read huggingface_hub's own).
            datasets.config.HF_HUB_OFFLINE = True
        local = self._local_copy(name)
        where = f"{local}" if local is not None else f"the Hugging Face Hub ({_endpoint()})"
        cache_dir = os.path.expanduser(self.config.cache_dir) if self.config.cache_dir else None
        try:
            loaded = datasets.load_dataset(
                str(local) if local is not None else name, cache_dir=cache_dir, **params
            )
        except ValueError as e:
            if "split" in str(e).lower():
                raise BadRequestError(
                    f"dataset {name!r} has no split {params['split']!r}: {_reason(e)}",
                    field=FIELD,
                ) from None
            raise self._unavailable(where, name, e) from None
        except Exception as e:  # connection errors, missing datasets, offline mode ...
            raise self._unavailable(where, name, e) from None
        return [json_safe(dict(row)) for row in loaded]

    def _unavailable(self, where: str, name: str, exc: Exception) -> ProviderError:
        return ProviderError(
            f"{where} could not provide dataset {name!r}: {_reason(exc)}",
            provider_id=self.context.provider_id,
        )


def _endpoint() -> str:
    # What the `datasets` library reads (its `config.HF_ENDPOINT`), without importing it:
    # a timed-out load may still be importing it in its thread, holding the import lock.
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__
