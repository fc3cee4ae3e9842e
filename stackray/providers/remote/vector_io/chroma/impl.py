"""`remote::chromadb`: the Chroma provider over HTTP to a Chroma server.

The server may have other writers, so keyword statistics are read from it per query
rather than cached.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from stackray.api.errors import ConfigError
from stackray.providers.inline.vector_io.chroma.impl import ChromaVectorIO
from stackray.providers.remote.vector_io.chroma.config import ChromaVectorIOConfig


class ChromaRemoteVectorIO(ChromaVectorIO):
    """Vector dbs in collections of a Chroma server."""

    embedded = False

    def _connect(self) -> Any:
        import chromadb

        config: ChromaVectorIOConfig = self.config
        url = urlparse(config.url if "://" in config.url else f"http://{config.url}")
        if not url.hostname:
            raise ConfigError(f"remote::chromadb: url {config.url!r} names no host")
        ssl = url.scheme == "https"
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if ssl else 8000),
            ssl=ssl,
            headers=config.headers or None,
            settings=chromadb.Settings(anonymized_telemetry=False),
        )
