"""Who may do what to each resource: Llama Stack 0.2.12's `access_policy` rules.

A resource records its owner (`User`: principal and attributes) when a caller creates it;
resources from the run config, or created while the stack had no authentication, have
no owner and are public. Every router asks `AccessPolicy.allows(action, resource_type,
identifier, owner)` with the caller of the current request (`current_user()`):

- No authentication (no caller): everything is allowed.
- `server.auth.access_policy` given: its rules are tried in order and the first that
  matches decides (permit or forbid); no rule matching is a refusal.
- No rules: the default policy. A caller reaches a resource when, for each of the
  attribute categories ``roles``, ``teams``, ``projects`` and ``namespaces`` that the
  owner has, the caller shares at least one value (0.2.12's default). An owner with
  none of those attributes keeps the resource to itself: 0.2.12 would make such a
  resource public, which turns a principal without attributes into a leak.

A caller who may not read a resource gets exactly what a missing id gets (404, absent
from lists): routers treat "not readable" as "not there".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stackray.runtime.request_context import User, current_user


class Action(str, Enum):
    create = "create"
    read = "read"
    update = "update"
    delete = "delete"


DEFAULT_CATEGORIES = ("roles", "teams", "projects", "namespaces")


# ---- conditions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """What a rule sees of a resource: its type (``model``, ``vector_db`` ...), id and owner."""

    type: str
    identifier: str
    owner: User | None


@dataclass(frozen=True)
class _Condition:
    kind: Literal["owner", "in_owners", "with_value"]
    negated: bool
    name: str = ""
    value: str = ""

    def matches(self, resource: Resource, user: User) -> bool:
        if self.kind == "owner":
            result = resource.owner is not None and resource.owner.principal == user.principal
        elif self.kind == "in_owners":
            required = (resource.owner.attributes.get(self.name) if resource.owner else None) or []
            mine = user.attributes.get(self.name) or []
            result = not required or any(v in mine for v in required)
        else:
            result = self.value in (user.attributes.get(self.name) or [])
        return result != self.negated


def parse_condition(text: str) -> _Condition:
    """One of: ``user is [not] owner``, ``user [not] in owners <attr>``,
    ``user with <value> [not] in <attr>``; anything else is a `ValueError`."""
    words = text.split()
    match words:
        case ["user", "is", "owner"]:
            return _Condition("owner", False)
        case ["user", "is", "not", "owner"]:
            return _Condition("owner", True)
        case ["user", "in", "owners", name]:
            return _Condition("in_owners", False, name=name)
        case ["user", "not", "in", "owners", name]:
            return _Condition("in_owners", True, name=name)
        case ["user", "with", value, "in", name]:
            return _Condition("with_value", False, name=name, value=value)
        case ["user", "with", value, "not", "in", name]:
            return _Condition("with_value", True, name=name, value=value)
    raise ValueError(
        f"invalid condition {text!r}: expected 'user is [not] owner', "
        "'user [not] in owners <attribute>' or 'user with <value> [not] in <attribute>'"
    )


# ---- rules (the config) ----------------------------------------------------------------


class Scope(BaseModel):
    """What a rule applies to."""

    model_config = ConfigDict(extra="forbid")

    principal: str | None = Field(
        default=None, description="Only this caller; every caller when omitted."
    )
    actions: list[Action] = Field(description="create, read, update and/or delete.")
    resource: str | None = Field(
        default=None,
        description="`<type>::<id>` (e.g. `model::llama`) or `<type>::*`; every resource when omitted.",
    )

    @field_validator("actions", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def matches(self, action: Action, resource: Resource, user: User) -> bool:
        if self.principal is not None and self.principal != user.principal:
            return False
        if self.resource is not None:
            qualified = f"{resource.type}::{resource.identifier}"
            if self.resource.endswith("::*"):
                if not qualified.startswith(self.resource[:-1]):
                    return False
            elif self.resource != qualified:
                return False
        return action in self.actions


class AccessRule(BaseModel):
    """One rule of `server.auth.access_policy`: `permit` or `forbid` a scope, optionally
    only `when` all conditions hold or `unless` they all do."""

    model_config = ConfigDict(extra="forbid")

    permit: Scope | None = Field(default=None, description="Allow what this scope covers.")
    forbid: Scope | None = Field(default=None, description="Refuse what this scope covers.")
    when: list[str] | None = Field(
        default=None, description="Conditions that must all hold for the rule to apply."
    )
    unless: list[str] | None = Field(
        default=None, description="Conditions that, all holding, keep the rule from applying."
    )
    description: str | None = Field(default=None, description="What the rule is for.")

    @field_validator("when", "unless", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("when", "unless")
    @classmethod
    def _parse(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            parse_condition(text)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> AccessRule:
        if (self.permit is None) == (self.forbid is None):
            raise ValueError("a rule has exactly one of permit or forbid")
        if self.when and self.unless:
            raise ValueError("a rule has when or unless, not both")
        return self

    def decides(self, action: Action, resource: Resource, user: User) -> bool | None:
        """True (permit) or False (forbid) when the rule applies, None when it does not."""
        scope = self.permit or self.forbid
        assert scope is not None
        if not scope.matches(action, resource, user):
            return None
        if self.when:
            if not all(parse_condition(c).matches(resource, user) for c in self.when):
                return None
        elif self.unless:
            if all(parse_condition(c).matches(resource, user) for c in self.unless):
                return None
        return self.permit is not None


# ---- the policy ------------------------------------------------------------------------


def _default_allows(resource: Resource, user: User) -> bool:
    owner = resource.owner
    if owner is None:
        return True
    if not any(owner.attributes.get(c) for c in DEFAULT_CATEGORIES):
        return owner.principal == user.principal
    return all(
        _Condition("in_owners", False, name=c).matches(resource, user) for c in DEFAULT_CATEGORIES
    )


class AccessPolicy:
    """The stack's access rules (`server.auth.access_policy`; the default policy when
    empty), asked about the caller of the current request."""

    def __init__(self, rules: Iterable[AccessRule] = ()) -> None:
        self.rules = list(rules)

    def allows(
        self,
        action: Action,
        resource_type: str,
        identifier: str,
        owner: User | None,
        user: User | None = None,
    ) -> bool:
        user = user if user is not None else current_user()
        if user is None:
            return True
        resource = Resource(resource_type, identifier, owner)
        if not self.rules:
            return _default_allows(resource, user)
        for rule in self.rules:
            decision = rule.decides(action, resource, user)
            if decision is not None:
                return decision
        return False

    def creator(self) -> User | None:
        """The owner to record on a resource the current caller creates."""
        return current_user()


OPEN_POLICY = AccessPolicy()
"""The policy of a stack without authentication: with no caller, everything is allowed."""


__all__ = [
    "AccessPolicy",
    "AccessRule",
    "Action",
    "OPEN_POLICY",
    "Resource",
    "Scope",
    "parse_condition",
]
