"""`remote::qdrant`: the Qdrant provider over qdrant-client connected to a server.

The server may have other writers, so keyword statistics are read from it per query
rather than cached (except with ``location: ':memory:'``, an in-process database).
"""

from __future__ import annotations

from typing import Any

from stackray.providers.inline.vector_io.qdrant.impl import QdrantVectorIO
from stackray.providers.remote.vector_io.qdrant.config import QdrantVectorIOConfig


class QdrantRemoteVectorIO(QdrantVectorIO):
    """Vector dbs in collections of a Qdrant server."""

    def _is_embedded(self) -> bool:
        return bool(self.config.location == ":memory:")

    def _connect(self) -> Any:
        from qdrant_client import QdrantClient

        config: QdrantVectorIOConfig = self.config
        return QdrantClient(**config.model_dump(exclude_none=True))
