"""The resource registry: models, shields, vector dbs ... persisted in the metadata store.

Every read goes to the store, so a resource registered through one replica is visible to
every other replica at once; there is no per-process cache to invalidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel

from stackray.runtime.storage import KVStore, open_kvstore

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig

R = TypeVar("R", bound=BaseModel)


class ResourceRegistry:
    """Typed access to resources of one kind per key prefix (``resource:<kind>:<id>``)."""

    def __init__(self, store: KVStore) -> None:
        self.store = store

    @staticmethod
    def _key(kind: str, identifier: str) -> str:
        return f"resource:{kind}:{identifier}"

    def get(self, cls: type[R], kind: str, identifier: str) -> R | None:
        raw = self.store.get(self._key(kind, identifier))
        return None if raw is None else cls.model_validate_json(raw)

    def put(self, kind: str, identifier: str, resource: BaseModel) -> None:
        self.store.set(self._key(kind, identifier), resource.model_dump_json())

    def put_if_absent(self, kind: str, identifier: str, resource: BaseModel) -> bool:
        """Store `resource` unless one with this id exists; atomic across replicas."""
        return self.store.set_if_absent(self._key(kind, identifier), resource.model_dump_json())

    def delete(self, kind: str, identifier: str) -> bool:
        return self.store.delete(self._key(kind, identifier))

    def list(self, cls: type[R], kind: str) -> list[R]:
        return [cls.model_validate_json(v) for _, v in self.store.list(f"resource:{kind}:")]


def open_registry(stack: StackConfig) -> ResourceRegistry:
    """The stack's resource registry, in its metadata store."""
    return ResourceRegistry(open_kvstore(stack.metadata_store_config()))
