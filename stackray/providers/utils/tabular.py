"""Rows of tabular files: CSV, JSON Lines, JSON, Parquet and Excel, from bytes or a path.

A dataset's source names its format by the file's extension (``.csv``, ``.jsonl`` ...)
or, for a ``data:`` URI, by its media type. As in Llama Stack 0.2.12, a ``data:`` URI of a
``text/*`` type that is not JSON is read as CSV, and one of another unknown type as Excel.
Every value is made JSON-safe (NaN and missing cells become null, numpy scalars plain
numbers, timestamps ISO strings), since rows travel as JSON.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from datetime import date, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from stackray.api.errors import BadRequestError

FORMATS = ("csv", "jsonl", "json", "parquet", "xlsx")

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
    ".xls": "xlsx",
}

_MEDIA_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "csv": "csv",
    "text/tab-separated-values": "tsv",
    "tsv": "tsv",
    "application/jsonl": "jsonl",
    "application/x-jsonl": "jsonl",
    "application/jsonlines": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "text/jsonl": "jsonl",
    "jsonl": "jsonl",
    "application/json": "json",
    "text/json": "json",
    "json": "json",
    "application/vnd.apache.parquet": "parquet",
    "application/parquet": "parquet",
    "application/x-parquet": "parquet",
    "parquet": "parquet",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-excel": "xlsx",
    "xlsx": "xlsx",
}

_DATA_URI = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.DOTALL)


def format_of_path(path: str) -> str | None:
    """The format a file name's extension names, or None."""
    lowered = path.lower()
    for ext, fmt in _EXTENSIONS.items():
        if lowered.endswith(ext):
            return fmt
    return None


def format_of_media_type(media_type: str) -> str:
    """The format of a media type, with Llama Stack 0.2.12's fallbacks (text: CSV, other: Excel)."""
    media_type = media_type.strip().lower()
    if media_type in _MEDIA_TYPES:
        return _MEDIA_TYPES[media_type]
    if media_type.endswith("+json"):
        return "json"
    if media_type.startswith("text/") or not media_type:
        return "csv"
    return "xlsx"


def decode_data_uri(uri: str, field: str = "source.uri") -> tuple[bytes, str]:
    """The bytes and the format of a ``data:`` URI (``data:text/csv;base64,...``)."""
    match = _DATA_URI.match(uri)
    if match is None:
        raise BadRequestError(
            "the data: URI does not decode: expected data:<media type>[;base64],<data>",
            field=field,
        )
    params = [p.strip().lower() for p in match["params"].split(";") if p.strip()]
    data = match["data"]
    if "base64" in params:
        try:
            raw = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadRequestError(
                f"the data: URI does not decode: its base64 data is invalid ({e})", field=field
            ) from None
    else:
        raw = unquote_to_bytes(data)
        charset = next((p.split("=", 1)[1] for p in params if p.startswith("charset=")), None)
        if charset and charset.replace("-", "") not in ("utf8", "ascii", "usascii"):
            try:
                raw = raw.decode(charset).encode("utf-8")
            except (LookupError, UnicodeDecodeError) as e:
                raise BadRequestError(
                    f"the data: URI does not decode as {charset} ({e})", field=field
                ) from None
    return raw, format_of_media_type(match["type"] or "text/plain")


def json_safe(value: Any) -> Any:
    """`value` as plain JSON: NaN -> None, numpy scalars and arrays -> numbers and lists."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return json_safe(tolist())
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        return isoformat()
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    return str(value)


def _records(frame: Any) -> list[dict[str, Any]]:
    return [
        {str(k): json_safe(v) for k, v in row.items()} for row in frame.to_dict(orient="records")
    ]


def _json_rows(text: str, lines: bool, source: str) -> list[dict[str, Any]]:
    if lines:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"line {n} is not JSON ({e.msg})") from None
    else:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            data = data["rows"]
        rows = data if isinstance(data, list) else [data]
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"row {i} is a {type(row).__name__}, not a JSON object")
    return [json_safe(r) for r in rows]


def read_rows(
    data: bytes, fmt: str, source: str, field: str = "source.uri"
) -> list[dict[str, Any]]:
    """The rows of a file's bytes in format `fmt`; a file that does not parse is a 400
    naming `source`."""
    try:
        if fmt in ("jsonl", "json"):
            return _json_rows(data.decode("utf-8-sig"), fmt == "jsonl", source)
        import pandas

        buffer = io.BytesIO(data)
        if fmt in ("csv", "tsv"):
            frame = pandas.read_csv(buffer, sep="\t" if fmt == "tsv" else ",")
        elif fmt == "parquet":
            frame = pandas.read_parquet(buffer)
        elif fmt == "xlsx":
            frame = pandas.read_excel(buffer)
        else:
            raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    except BadRequestError:
        raise
    except ImportError as e:
        raise BadRequestError(
            f"{source}: reading {fmt} needs the {e.name} package, which is not installed",
            field=field,
        ) from None
    except Exception as e:  # each reader raises its own kinds
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadRequestError(f"{source} does not decode as {fmt}: {reason}", field=field) from None
    return _records(frame)
