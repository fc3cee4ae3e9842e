"""Owned documents: access control for the resources kept in document tables (files,
vector stores, agents and sessions, stored chat completions, responses).

A document created by a caller carries its owner under `OWNER_FIELD` (stripped before
anything leaves the router); `readable_page` pages through a table for the caller, so a
page holds `limit` documents the caller may read and `has_more` stays right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stackray.api.errors import BadRequestError, NotFoundError, PermissionDeniedError
from stackray.runtime.access_control import AccessPolicy, Action
from stackray.runtime.request_context import User, current_user
from stackray.runtime.storage import DocumentStore

OWNER_FIELD = "__owner__"


def stamp(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` owned by the current caller (unchanged without authentication)."""
    user = current_user()
    if user is not None:
        doc[OWNER_FIELD] = user.to_dict()
    return doc


def owner_of(doc: Mapping[str, Any]) -> User | None:
    raw = doc.get(OWNER_FIELD)
    return User.from_dict(raw) if raw else None


def without_owner(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != OWNER_FIELD}


class OwnedDocuments:
    """The access checks of one resource type kept in documents (``file``, ...)."""

    def __init__(self, policy: AccessPolicy, resource_type: str) -> None:
        self.policy = policy
        self.resource_type = resource_type

    def allows(self, action: Action, doc: Mapping[str, Any], identifier: str) -> bool:
        return self.policy.allows(action, self.resource_type, identifier, owner_of(doc))

    def readable(self, doc: Mapping[str, Any] | None, identifier: str) -> bool:
        return doc is not None and self.allows(Action.read, doc, identifier)

    def visible(
        self, doc: dict[str, Any] | None, identifier: str, what: str, field: str
    ) -> dict[str, Any]:
        """`doc` when the caller may read it; else the 404 of an id that does not exist."""
        if doc is None or not self.readable(doc, identifier):
            raise NotFoundError(f"{what} {identifier!r} not found", field=field)
        return doc

    def require(self, action: Action, doc: Mapping[str, Any], identifier: str) -> None:
        """403 for an action the caller may not take on a resource it can see."""
        if not self.allows(action, doc, identifier):
            raise PermissionDeniedError(
                f"{action.value} of {self.resource_type} {identifier!r} is not permitted"
            )

    def require_create(self, identifier: str) -> None:
        if not self.policy.allows(Action.create, self.resource_type, identifier, current_user()):
            raise PermissionDeniedError(f"creating a {self.resource_type} is not permitted")


def readable_page(
    store: DocumentStore,
    readable: Callable[[dict[str, Any]], bool],
    where: Mapping[str, Any] | None = None,
    *,
    order_by: str | None = None,
    desc: bool = True,
    after: str | None = None,
    limit: int | None = None,
    id_of: Callable[[dict[str, Any]], str] = lambda doc: str(doc["id"]),
    batch: int = 100,
) -> tuple[list[dict[str, Any]], bool]:
    """Like `DocumentStore.query`, counting only the documents `readable` accepts; a
    cursor naming a document the caller may not read is refused like an unknown one.
    `id_of`: a document's id in the table."""
    if after is not None:
        anchor = store.get(after)
        if anchor is None or not readable(anchor):
            raise BadRequestError(f"cursor {after!r} does not name a stored item", field="after")
    found: list[dict[str, Any]] = []
    cursor = after
    while True:
        docs, more = store.query(where, order_by=order_by, desc=desc, after=cursor, limit=batch)
        for doc in docs:
            if readable(doc):
                if limit is not None and len(found) == limit:
                    return found, True
                found.append(doc)
        if not more or not docs:
            return found, False
        cursor = id_of(docs[-1])
