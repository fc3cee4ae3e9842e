"""The resource registry: models, shields, vector dbs ... persisted in the metadata store.

Every read goes to the store, so a resource registered through one replica is visible to
every other replica at once; there is no per-process cache to invalidate.

Kinds named in `PROTECTED` are access-controlled (`stackray.runtime.access_control`):
each record keeps the owner who created it (none for the run config's resources), and
every read, list, update and delete is asked of the stack's policy for the caller of the
current request. A resource the caller may not read is absent: `get` answers None and
`list` leaves it out, so routers answer 404 exactly as for an id that does not exist.
"""

from __future__ import annotations

import builtins
import json
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from stackray.api.errors import ConflictError, PermissionDeniedError
from stackray.runtime.access_control import OPEN_POLICY, AccessPolicy, Action
from stackray.runtime.request_context import User
from stackray.runtime.storage import KVStore, open_kvstore

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig

R = TypeVar("R", bound=BaseModel)

PROTECTED: dict[str, str] = {
    "models": "model",
    "shields": "shield",
    "vector_dbs": "vector_db",
    "tool_groups": "tool_group",
    "datasets": "dataset",
    "scoring_functions": "scoring_function",
    "benchmarks": "benchmark",
}
"""Registry kinds under access control, and the resource type access rules name them by
(``model::my-model``, ``vector_db::*``)."""

OWNER_KEY = "__owner__"


def _decode(raw: str) -> tuple[dict[str, Any], User | None]:
    data = json.loads(raw)
    owner = data.pop(OWNER_KEY, None)
    return data, (User.from_dict(owner) if owner else None)


def _encode(resource: BaseModel, owner: User | None) -> str:
    data = json.loads(resource.model_dump_json())
    if owner is not None:
        data[OWNER_KEY] = owner.to_dict()
    return json.dumps(data)


class ResourceRegistry:
    """Typed access to resources of one kind per key prefix (``resource:<kind>:<id>``)."""

    def __init__(self, store: KVStore, policy: AccessPolicy = OPEN_POLICY) -> None:
        self.store = store
        self.policy = policy

    @staticmethod
    def _key(kind: str, identifier: str) -> str:
        return f"resource:{kind}:{identifier}"

    def _allows(self, action: Action, kind: str, identifier: str, owner: User | None) -> bool:
        rtype = PROTECTED.get(kind)
        return rtype is None or self.policy.allows(action, rtype, identifier, owner)

    def _read(self, kind: str, identifier: str) -> tuple[dict[str, Any], User | None] | None:
        raw = self.store.get(self._key(kind, identifier))
        return None if raw is None else _decode(raw)

    def get(self, cls: type[R], kind: str, identifier: str) -> R | None:
        """The resource, or None when there is none or the caller may not read it."""
        found = self._read(kind, identifier)
        if found is None or not self._allows(Action.read, kind, identifier, found[1]):
            return None
        return cls.model_validate(found[0])

    def get_for_create(self, cls: type[R], kind: str, identifier: str) -> R | None:
        """Before creating `identifier`: the existing resource the caller may read (to
        compare with the new one), None when the id is free; a `ConflictError` when a
        resource the caller may not read holds the id (ids are one namespace)."""
        found = self._read(kind, identifier)
        if found is None:
            return None
        if not self._allows(Action.read, kind, identifier, found[1]):
            raise ConflictError(f"the id {identifier!r} is taken; choose another")
        return cls.model_validate(found[0])

    def owner(self, kind: str, identifier: str) -> User | None:
        found = self._read(kind, identifier)
        return None if found is None else found[1]

    def put(self, kind: str, identifier: str, resource: BaseModel) -> None:
        """Store `resource`: a new one owned by the caller, an existing one replaced
        (keeping its owner) when the caller may update it."""
        found = self._read(kind, identifier)
        if found is None:
            self._check(Action.create, kind, identifier, self.policy.creator())
            owner = self.policy.creator() if kind in PROTECTED else None
        else:
            owner = found[1]
            self._check(Action.update, kind, identifier, owner)
        self.store.set(self._key(kind, identifier), _encode(resource, owner))

    def put_if_absent(self, kind: str, identifier: str, resource: BaseModel) -> bool:
        """Store `resource` owned by the caller unless one with this id exists; atomic
        across replicas."""
        creator = self.policy.creator() if kind in PROTECTED else None
        self._check(Action.create, kind, identifier, creator)
        return self.store.set_if_absent(self._key(kind, identifier), _encode(resource, creator))

    def delete(self, kind: str, identifier: str) -> bool:
        found = self._read(kind, identifier)
        if found is None:
            return False
        self._check(Action.delete, kind, identifier, found[1])
        return self.store.delete(self._key(kind, identifier))

    def list(self, cls: type[R], kind: str) -> list[R]:
        """The resources of `kind` the caller may read."""
        out = []
        prefix = f"resource:{kind}:"
        for key, raw in self.store.list(prefix):
            data, owner = _decode(raw)
            # Ids may hold colons themselves (`mcp::search`): the id is all after the prefix.
            if self._allows(Action.read, kind, key[len(prefix) :], owner):
                out.append(cls.model_validate(data))
        return out

    def list_all(self, cls: type[R], kind: str) -> builtins.list[R]:
        """Every resource of `kind`, whoever owns it: for the stack's own checks (an id
        or a provider-side name already in use), never for an answer to the caller."""
        return [cls.model_validate(_decode(v)[0]) for _, v in self.store.list(f"resource:{kind}:")]

    def require(self, action: Action, kind: str, identifier: str) -> None:
        """Refuse (403) `action` on a resource the caller can see but may not act on;
        routers call it before touching the provider, so a refusal changes nothing."""
        found = self._read(kind, identifier)
        self._check(action, kind, identifier, found[1] if found else self.policy.creator())

    def _check(self, action: Action, kind: str, identifier: str, owner: User | None) -> None:
        if not self._allows(action, kind, identifier, owner):
            raise PermissionDeniedError(
                f"{action.value} of {PROTECTED[kind]} {identifier!r} is not permitted"
            )


def access_policy(stack: StackConfig) -> AccessPolicy:
    """The stack's access policy: `server.auth.access_policy` (the default policy when it
    has no rules)."""
    auth = stack.server.auth
    return AccessPolicy(auth.access_policy) if auth is not None else OPEN_POLICY


def open_registry(stack: StackConfig) -> ResourceRegistry:
    """The stack's resource registry, in its metadata store, under its access policy."""
    return ResourceRegistry(open_kvstore(stack.metadata_store_config()), access_policy(stack))
