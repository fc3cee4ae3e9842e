"""Helpers shared by vector IO providers: chunk text and ids, metadata filters, table
names, and metadata filters as SQLite JSON conditions.

No heavy imports here: numpy and database clients stay inside the providers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stackray.api.common import interleaved_content_as_str
from stackray.api.vector_io import Chunk


def chunk_text(chunk: Chunk) -> str:
    """The text of a chunk (what is embedded and keyword-indexed)."""
    return interleaved_content_as_str(chunk.content)


def chunk_id_of(chunk: Chunk) -> str:
    """The chunk's ``metadata['chunk_id']`` (the router sets it on every inserted chunk)."""
    value = chunk.metadata.get("chunk_id")
    if value is None:
        raise ValueError("chunk has no metadata['chunk_id']")
    return str(value)


def stored_chunk_json(chunk: Chunk) -> str:
    """The chunk as stored by a provider: content and metadata; the embedding lives in
    the index and is not repeated (query results carry no embedding)."""
    return chunk.model_copy(update={"embedding": None}).model_dump_json(exclude_none=True)


def matches_filters(metadata: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    """Every filter key is present in `metadata` with exactly the filter's value."""
    if not filters:
        return True
    for key, value in filters.items():
        if key not in metadata:
            return False
        have = metadata[key]
        # JSON semantics: True is not 1, 1 == 1.0.
        if isinstance(have, bool) != isinstance(value, bool) or have != value:
            return False
    return True


def table_suffix(name: str) -> str:
    """A short identifier-safe name for a vector db (its tables are named after it)."""
    return hashlib.sha256(name.encode()).hexdigest()[:20]


def sqlite_filter_sql(filters: dict[str, Any] | None, column: str) -> tuple[str, list[Any]]:
    """Metadata `filters` as an SQLite condition on JSON text `column` (``"1"`` when none).

    Scalars compare by JSON type and value; lists and objects by their canonical JSON.
    """
    if not filters:
        return "1", []
    parts: list[str] = []
    params: list[Any] = []
    for key, value in filters.items():
        path = '$."' + key.replace('"', '""') + '"'
        if value is None:
            parts.append(f"json_type({column}, ?) = 'null'")
            params.append(path)
        elif isinstance(value, bool):
            parts.append(f"json_type({column}, ?) = ?")
            params.extend([path, "true" if value else "false"])
        elif isinstance(value, int | float):
            parts.append(
                f"json_type({column}, ?) IN ('integer', 'real') AND json_extract({column}, ?) = ?"
            )
            params.extend([path, path, value])
        elif isinstance(value, str):
            parts.append(f"json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?")
            params.extend([path, path, value])
        else:
            parts.append(f"json(json_extract({column}, ?)) = json(?)")
            params.extend([path, json.dumps(value, separators=(",", ":"))])
    return " AND ".join(f"({p})" for p in parts), params
