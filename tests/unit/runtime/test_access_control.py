"""Access rules: the default policy (owners' attributes), `access_policy` rules
(permit/forbid, scopes, when/unless), and the registry that applies them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from stackray.api.errors import ConflictError, PermissionDeniedError
from stackray.runtime.access_control import AccessPolicy, AccessRule, Action, parse_condition
from stackray.runtime.request_context import RequestContext, User, use_context
from stackray.runtime.resources import ResourceRegistry
from stackray.runtime.storage import SqliteKVStore, SqliteStoreConfig

ALICE = User("alice", {"roles": ["alice"], "teams": ["ml"]})
BOB = User("bob", {"roles": ["bob"], "teams": ["web"]})
CAROL = User("carol", {"roles": ["carol"], "teams": ["ml"]})
ADMIN = User("root", {"roles": ["admin"]})
BARE = User("nobody")

ALL = list(Action)


def allows(policy: AccessPolicy, user: User, owner: User | None, action: Action = Action.read):
    return policy.allows(action, "model", "m1", owner, user)


# ---- the default policy ----------------------------------------------------------------


def test_default_policy_shares_by_owner_attributes():
    policy = AccessPolicy()
    owned_by_alice = User("alice", {"roles": ["alice"]})
    assert allows(policy, ALICE, owned_by_alice)
    assert not allows(policy, BOB, owned_by_alice)
    assert not allows(policy, BARE, owned_by_alice)
    # Owner attributes in several categories: the caller shares one value of each.
    team_owner = User("x", {"teams": ["ml"], "projects": ["p1"]})
    assert not allows(policy, CAROL, team_owner)  # no project
    assert allows(policy, User("y", {"teams": ["ml", "web"], "projects": ["p1"]}), team_owner)


def test_default_policy_public_and_attributeless_owners():
    policy = AccessPolicy()
    assert allows(policy, BOB, None)  # the run config's resources are public
    # 0.2.12 would make this public; here an owner without attributes keeps it.
    assert allows(policy, BARE, BARE)
    assert not allows(policy, ALICE, BARE)
    assert not allows(policy, ALICE, User("svc", {"email": ["svc@x"]}))


def test_without_authentication_everything_is_allowed():
    assert AccessPolicy().allows(Action.delete, "model", "m", ALICE, None)


# ---- rules -----------------------------------------------------------------------------


def policy_of(*rules: dict) -> AccessPolicy:
    return AccessPolicy([AccessRule.model_validate(r) for r in rules])


def test_admin_rule_then_owner_rule():
    policy = policy_of(
        {"permit": {"actions": ALL}, "when": "user with admin in roles"},
        {"permit": {"actions": ALL}, "when": ["user is owner"]},
        {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
    )
    assert allows(policy, ADMIN, ALICE, Action.delete)
    assert allows(policy, ALICE, ALICE, Action.delete)
    assert allows(policy, CAROL, ALICE, Action.read)  # same team may read
    assert not allows(policy, CAROL, ALICE, Action.delete)  # ... not delete
    assert not allows(policy, BOB, ALICE, Action.read)  # no rule matches: refused


def test_forbid_unless_and_resource_patterns():
    policy = policy_of(
        {
            "forbid": {"actions": ["create", "delete"], "resource": "vector_db::*"},
            "unless": "user with admin in roles",
        },
        {"permit": {"principal": "bob", "actions": "read", "resource": "model::m1"}},
        {"permit": {"actions": ALL}},
    )
    assert not policy.allows(Action.create, "vector_db", "v", None, ALICE)
    assert policy.allows(Action.create, "vector_db", "v", None, ADMIN)
    assert policy.allows(Action.read, "vector_db", "v", ALICE, BOB)  # read is not forbidden
    assert policy.allows(Action.create, "model", "m", None, ALICE)
    # `vector_db::*` does not cover a type that merely starts the same way.
    assert policy.allows(Action.create, "vector_dbx", "v", None, ALICE)


def test_principal_scoped_rule():
    policy = policy_of({"permit": {"principal": "bob", "actions": "read", "resource": "model::m1"}})
    assert allows(policy, BOB, ALICE)
    assert not policy.allows(Action.read, "model", "m2", ALICE, BOB)
    assert not allows(policy, CAROL, ALICE)


@pytest.mark.parametrize(
    ("text", "user", "owner", "expected"),
    [
        ("user is owner", ALICE, ALICE, True),
        ("user is owner", ALICE, None, False),
        ("user is not owner", ALICE, BOB, True),
        ("user in owners teams", CAROL, ALICE, True),
        ("user in owners teams", BOB, ALICE, False),
        ("user not in owners teams", BOB, ALICE, True),
        ("user with admin in roles", ADMIN, None, True),
        ("user with admin not in roles", ALICE, None, True),
    ],
)
def test_conditions(text, user, owner, expected):
    from stackray.runtime.access_control import Resource

    assert parse_condition(text).matches(Resource("model", "m", owner), user) is expected


# ---- the registry ----------------------------------------------------------------------


class Thing(BaseModel):
    identifier: str
    size: int = 0


@pytest.fixture()
def registry(tmp_path):
    store = SqliteKVStore(SqliteStoreConfig(db_path=str(tmp_path / "r.db")))
    return ResourceRegistry(store, AccessPolicy())


def as_user(user: User | None):
    return use_context(RequestContext(user=user))


def test_registry_records_owner_and_hides_from_others(registry):
    registry.put_if_absent("models", "public", Thing(identifier="public"))  # no caller
    with as_user(ALICE):
        assert registry.put_if_absent("models", "a1", Thing(identifier="a1"))
        assert registry.owner("models", "a1") == ALICE
    with as_user(BOB):
        assert registry.get(Thing, "models", "a1") is None
        assert [t.identifier for t in registry.list(Thing, "models")] == ["public"]
        with pytest.raises(ConflictError, match="taken"):
            registry.get_for_create(Thing, "models", "a1")
        assert {t.identifier for t in registry.list_all(Thing, "models")} == {"public", "a1"}
    with as_user(CAROL):  # shares no role with alice
        assert registry.get(Thing, "models", "a1") is None
    with as_user(ALICE):
        assert registry.get(Thing, "models", "a1") == Thing(identifier="a1")
        assert registry.get(Thing, "models", "public") is not None
        # An update keeps the owner.
        registry.put("models", "a1", Thing(identifier="a1", size=2))
        assert registry.owner("models", "a1") == ALICE
    # The stored record is the resource plus its owner; what callers get has no owner.
    assert "__owner__" in (registry.store.get("resource:models:a1") or "")
    assert "alice" not in Thing(identifier="a1").model_dump_json()


def test_registry_refuses_actions_the_policy_forbids(tmp_path):
    store = SqliteKVStore(SqliteStoreConfig(db_path=str(tmp_path / "r.db")))
    policy = policy_of(
        {"permit": {"actions": ALL}, "when": "user is owner"},
        {"permit": {"actions": ["read"]}, "when": "user in owners teams"},
        {"permit": {"actions": ["create"]}},
    )
    registry = ResourceRegistry(store, policy)
    with as_user(ALICE):
        registry.put_if_absent("models", "a1", Thing(identifier="a1"))
    with as_user(CAROL):
        assert registry.get(Thing, "models", "a1") is not None  # the team reads it
        with pytest.raises(PermissionDeniedError):
            registry.require(Action.delete, "models", "a1")
        with pytest.raises(PermissionDeniedError):
            registry.put("models", "a1", Thing(identifier="a1", size=9))
        with pytest.raises(PermissionDeniedError):
            registry.delete("models", "a1")
    with as_user(ALICE):
        assert registry.delete("models", "a1")


def test_unprotected_kinds_have_no_owner(registry):
    with as_user(ALICE):
        registry.put("tool_listings", "g", Thing(identifier="g"))
    with as_user(BOB):
        assert registry.get(Thing, "tool_listings", "g") is not None
    assert registry.owner("tool_listings", "g") is None


def test_rules_name_ids_with_colons_in_lists_and_gets(tmp_path):
    store = SqliteKVStore(SqliteStoreConfig(db_path=str(tmp_path / "r.db")))
    policy = policy_of(
        {"permit": {"actions": ["read"], "resource": "tool_group::mcp::shared"}},
        {"permit": {"actions": ALL}, "when": "user is owner"},
    )
    registry = ResourceRegistry(store, policy)
    with as_user(ALICE):
        registry.put_if_absent("tool_groups", "mcp::shared", Thing(identifier="mcp::shared"))
        registry.put_if_absent("tool_groups", "mcp::private", Thing(identifier="mcp::private"))
    with as_user(BOB):
        assert [t.identifier for t in registry.list(Thing, "tool_groups")] == ["mcp::shared"]
        assert registry.get(Thing, "tool_groups", "mcp::shared") is not None
        assert registry.get(Thing, "tool_groups", "mcp::private") is None
