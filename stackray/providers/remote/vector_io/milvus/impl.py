"""`remote::milvus`: the Milvus provider over pymilvus connected to `uri` with `token`."""

from __future__ import annotations

from typing import Any

from stackray.providers.inline.vector_io.milvus.impl import MilvusVectorIO
from stackray.providers.remote.vector_io.milvus.config import MilvusVectorIOConfig
from stackray.providers.utils.vector_db import SyncClient


class MilvusRemoteVectorIO(MilvusVectorIO):
    """Vector dbs in collections of a Milvus server."""

    def __init__(self, config: MilvusVectorIOConfig, deps: dict[Any, Any], context: Any) -> None:
        super().__init__(config, deps, context)
        # A server's client takes concurrent calls; a Milvus Lite file URI gets them in turn.
        self._sync = SyncClient(serialize="://" not in config.uri)

    def _connect(self) -> Any:
        from pymilvus import MilvusClient

        config: MilvusVectorIOConfig = self.config
        return MilvusClient(uri=config.uri, token=config.token or "")
