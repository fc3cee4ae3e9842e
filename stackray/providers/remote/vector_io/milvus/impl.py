"""`remote::milvus`: the Milvus provider over pymilvus connected to `uri` with `token`."""

from __future__ import annotations

from typing import Any

from stackray.providers.inline.vector_io.milvus.impl import MilvusVectorIO
from stackray.providers.remote.vector_io.milvus.config import MilvusVectorIOConfig


class MilvusRemoteVectorIO(MilvusVectorIO):
    """Vector dbs in collections of a Milvus server."""

    def _connect(self) -> Any:
        from pymilvus import MilvusClient

        config: MilvusVectorIOConfig = self.config
        return MilvusClient(uri=config.uri, token=config.token or "")
