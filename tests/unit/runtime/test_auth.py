"""`server.auth`: the config shapes, and each authenticator against a real identity
provider on loopback (real signed JWTs, a real JWKS, introspection, a custom endpoint)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from stackray.api.errors import AuthenticationError, ConfigError
from stackray.runtime.auth import (
    FAILED,
    AuthConfig,
    JWKSAuthenticator,
    attributes_from_claims,
    bearer_token,
    build_authenticator,
    harden_raw_config,
    hash_api_key,
)
from stackray.runtime.config import parse_config
from stackray.runtime.request_context import User
from tests.unit.support.identity_provider import AUDIENCE, ISSUER, IdentityProvider

MINIMAL: dict[str, Any] = {"version": 2, "image_name": "auth", "apis": []}


def stack_with(auth: dict[str, Any]) -> Any:
    return parse_config(dict(MINIMAL, server={"auth": auth}))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def jwks_auth(idp: IdentityProvider, **config: Any) -> Any:
    cfg: dict[str, Any] = {"jwks": {"uri": f"{idp.url}/jwks.json"}, "issuer": ISSUER}
    cfg.update(config)
    auth = AuthConfig(provider_type="oauth2_token", config=cfg)
    authenticator = build_authenticator(auth)
    assert isinstance(authenticator, JWKSAuthenticator)
    return authenticator


def refused(authenticator: Any, token: str, scope: dict[str, Any] | None = None) -> str:
    with pytest.raises(AuthenticationError) as info:
        run(authenticator.authenticate(token, scope or {}))
    assert info.value.message == FAILED  # the same words whatever went wrong
    return str(info.value.reason)  # type: ignore[attr-defined]


# ---- config ----------------------------------------------------------------------------


def test_oauth2_config_with_llama_stack_defaults():
    stack = stack_with({"provider_type": "oauth2_token", "config": {"jwks": {"uri": "http://x"}}})
    parsed = stack.server.auth.parsed
    assert parsed.audience == "llama-stack"
    assert parsed.jwks.key_recheck_period == 3600
    assert parsed.claims_mapping == {
        "sub": "roles",
        "username": "roles",
        "groups": "teams",
        "team": "teams",
        "project": "projects",
        "tenant": "namespaces",
        "namespace": "namespaces",
    }


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"provider_type": "oauth2_token", "config": {}}, "exactly one of jwks or introspection"),
        (
            {"provider_type": "oauth2_token", "config": {"jwks": {}}},
            r"server.auth: .*config.jwks.uri: Field required",
        ),
        ({"provider_type": "github_token", "config": {}}, "server.auth.provider_type: .*github"),
        ({"provider_type": "kerberos", "config": {}}, "server.auth.provider_type: .*unknown"),
        ({"provider_type": "custom", "config": {}}, "config.endpoint: Field required"),
        (
            {"provider_type": "api_key", "config": {"keys": [{"key": "short", "principal": "a"}]}},
            "at least 16 characters",
        ),
        (
            {"provider_type": "api_key", "config": {"keys": [{"principal": "a"}]}},
            "exactly one of key or key_sha256",
        ),
        (
            {"provider_type": "custom", "config": {"endpoint": "http://x", "extra": 1}},
            "config.extra: Extra inputs are not permitted",
        ),
        (
            {
                "provider_type": "custom",
                "config": {"endpoint": "http://x"},
                "access_policy": [{"permit": {"actions": ["read"]}, "when": "user is admin"}],
            },
            r"server.auth.access_policy\[0\].when: .*invalid condition",
        ),
        (
            {
                "provider_type": "custom",
                "config": {"endpoint": "http://x"},
                "access_policy": [{"permit": {"actions": ["read"]}, "forbid": {"actions": []}}],
            },
            "exactly one of permit or forbid",
        ),
    ],
)
def test_bad_auth_config_is_refused_naming_the_field(auth, message):
    with pytest.raises(ConfigError, match=message):
        stack_with(auth)


def test_tls_is_still_refused_naming_the_field():
    with pytest.raises(ConfigError, match="server.tls_certfile: "):
        parse_config(dict(MINIMAL, server={"tls_certfile": "/c.pem", "tls_keyfile": "/k.pem"}))


def test_api_keys_are_kept_as_hashes_only(monkeypatch):
    monkeypatch.setenv("TEAM_KEY", "k" * 32)
    stack = parse_config(
        dict(
            MINIMAL,
            server={
                "auth": {
                    "provider_type": "api_key",
                    "config": {
                        "keys": [
                            {"key": "${env.TEAM_KEY}", "principal": "alice"},
                            {"key_sha256": hash_api_key("b" * 20).upper(), "principal": "bob"},
                        ]
                    },
                }
            },
        )
    )
    auth = stack.server.auth
    dumped = json.dumps(auth.config) + auth.model_dump_json()
    assert "k" * 32 not in dumped
    assert auth.config["keys"][0] == {
        "key_sha256": hashlib.sha256(b"k" * 32).hexdigest(),
        "principal": "alice",
        "attributes": {},
    }
    # What replicas receive parses again to the same keys, and holds no key.
    raw = harden_raw_config(
        {"server": {"auth": {"provider_type": "api_key", "config": {}}}, "apis": []}, auth
    )
    assert "k" * 32 not in json.dumps(raw)
    again = AuthConfig.model_validate(raw["server"]["auth"])
    assert again.config == auth.config
    authenticator = build_authenticator(again)
    assert run(authenticator.authenticate("k" * 32, {})) == User("alice", {})
    assert run(authenticator.authenticate("b" * 20, {})).principal == "bob"


def test_the_same_api_key_twice_is_refused():
    key = {"key": "x" * 20, "principal": "a"}
    with pytest.raises(ConfigError, match="the same key is listed twice"):
        stack_with(
            {"provider_type": "api_key", "config": {"keys": [key, dict(key, principal="b")]}}
        )


# ---- bearer tokens and claims ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (b"Bearer abc", "abc"),
        (b"bearer  abc ", "abc"),
        (b"Basic YTpi", None),
        (b"Bearer ", None),
        (b"abc", None),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token({"headers": [(b"authorization", header)]}) == token
    assert bearer_token({"headers": []}) is None


def test_claims_become_attributes():
    claims = {"sub": "alice", "groups": ["ml", "nlp"], "project": "p1 p2", "n": 3}
    mapping = {"sub": "roles", "groups": "teams", "project": "projects", "n": "numbers"}
    assert attributes_from_claims(claims, mapping) == {
        "roles": ["alice"],
        "teams": ["ml", "nlp"],
        "projects": ["p1", "p2"],
        "numbers": ["3"],
    }


# ---- oauth2_token with a JWKS ----------------------------------------------------------


def test_a_valid_jwt_gives_principal_and_attributes(idp):
    auth = jwks_auth(idp)
    token = idp.sign("alice", groups=["ml"], tenant="research")
    user = run(auth.authenticate(token, {}))
    assert user == User("alice", {"roles": ["alice"], "teams": ["ml"], "namespaces": ["research"]})
    # An EC key of the same JWKS works too.
    assert run(auth.authenticate(idp.sign("bob", kid="key-ec"), {})).principal == "bob"


def test_expired_and_not_yet_valid_tokens_are_refused(idp):
    auth = jwks_auth(idp)
    assert "Expired" in refused(auth, idp.sign(exp_in=-60))
    assert "ImmatureSignature" in refused(auth, idp.sign(nbf_in=120))
    assert "exp" in refused(auth, idp.sign(exp_in=None))  # a token that never expires


def test_wrong_audience_and_issuer_are_refused(idp):
    auth = jwks_auth(idp)
    assert "Audience" in refused(auth, idp.sign(aud="another-service"))
    assert "aud" in refused(auth, idp.sign(aud=None))
    assert "Issuer" in refused(auth, idp.sign(iss="https://evil.test"))
    # Without a configured issuer any is accepted, as in Llama Stack 0.2.12.
    open_issuer = jwks_auth(idp, issuer=None)
    assert run(open_issuer.authenticate(idp.sign(iss="https://other.test"), {})).principal
    custom_aud = jwks_auth(idp, audience="my-stack")
    assert run(custom_aud.authenticate(idp.sign(aud="my-stack"), {})).principal == "alice"


def test_alg_none_and_hmac_with_the_public_key_are_refused(idp):
    auth = jwks_auth(idp)
    assert "'none'" in refused(auth, IdentityProvider.unsigned())
    # The classic confusion: an HMAC "signed" with the published public key as secret.
    public_pem = (
        idp.keys["key-1"]
        .private.public_key()
        .public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": "key-1"}).encode())
    body = b64(
        json.dumps({"sub": "mallory", "aud": AUDIENCE, "iss": ISSUER, "exp": 2**40}).encode()
    )
    sig = b64(hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest())
    assert "HS256" in refused(auth, f"{header}.{body}.{sig}")
    assert "not a JWT" in refused(auth, "not-a-token")


def test_tokens_for_unknown_or_other_keys_are_refused(idp):
    auth = jwks_auth(idp)
    stranger = idp.add_key("key-unpublished")
    assert "unknown key" in refused(auth, idp.sign(kid=stranger.kid))
    # Signed by another key, claiming a published kid: the signature does not verify.
    forged = idp.sign(kid=stranger.kid).split(".")
    forged_header = jwt.utils.base64url_encode(
        json.dumps({"alg": "RS256", "kid": "key-1", "typ": "JWT"}).encode()
    ).decode()
    assert "Signature" in refused(auth, ".".join([forged_header, forged[1], forged[2]]))
    # A kid whose key is for another algorithm.
    ec_header = jwt.utils.base64url_encode(
        json.dumps({"alg": "RS256", "kid": "key-ec"}).encode()
    ).decode()
    assert "is for ES256" in refused(auth, ".".join([ec_header, forged[1], forged[2]]))


def test_a_rotated_key_is_picked_up_and_a_removed_one_refused(idp):
    auth = jwks_auth(idp)
    assert run(auth.authenticate(idp.sign(kid="key-1"), {})).principal == "alice"
    reads = idp.jwks_reads
    # More requests with a known key read no JWKS (the cache holds for key_recheck_period).
    run(auth.authenticate(idp.sign(kid="key-1"), {}))
    assert idp.jwks_reads == reads
    # The identity provider rotates: key-2 replaces key-1. A token for key-2 makes the
    # stack read the JWKS again at once (at most once per UNKNOWN_KEY_REFETCH_S).
    idp.add_key("key-2")
    idp.publish("key-2")
    auth.unknown_key_refetch_s = 0.0
    assert run(auth.authenticate(idp.sign(kid="key-2"), {})).principal == "alice"
    assert idp.jwks_reads == reads + 1
    # key-1 is gone from the JWKS: a token for it is refused (the re-read dropped it).
    assert "unknown key 'key-1'" in refused(auth, idp.sign(kid="key-1"))


def test_unknown_kids_do_not_flood_the_identity_provider(idp):
    auth = jwks_auth(idp)
    run(auth.authenticate(idp.sign(), {}))
    reads = idp.jwks_reads
    for i in range(5):
        refused(auth, idp.sign(kid=idp.add_key(f"junk-{i}").kid))
    assert idp.jwks_reads <= reads + 1


def test_key_recheck_period_re_reads_the_jwks(idp):
    auth = jwks_auth(idp, jwks={"uri": f"{idp.url}/jwks.json", "key_recheck_period": 0})
    run(auth.authenticate(idp.sign(), {}))
    idp.publish("key-ec")
    auth.unknown_key_refetch_s = 3600.0  # only the period can drop key-1 now
    assert "unknown key" in refused(auth, idp.sign(kid="key-1"))


def test_the_jwks_token_is_sent(idp):
    idp.jwks_token = "sa-token-123"
    without = jwks_auth(idp)
    assert "unknown key" in refused(without, idp.sign())  # the JWKS answered 401
    auth = jwks_auth(idp, jwks={"uri": f"{idp.url}/jwks.json", "token": "sa-token-123"})
    assert run(auth.authenticate(idp.sign(), {})).principal == "alice"
    assert idp.requests[-1]["headers"]["authorization"] == "Bearer sa-token-123"


# ---- oauth2_token with introspection ---------------------------------------------------


def test_introspection(idp):
    idp.opaque["opaque-1"] = {"sub": "carol", "groups": "ml ops", "aud": AUDIENCE}
    idp.opaque["opaque-other"] = {"sub": "dave", "aud": "another-service"}
    config = {
        "introspection": {
            "url": f"{idp.url}/introspect",
            "client_id": "stack",
            "client_secret": "s3",
        }
    }
    auth = build_authenticator(AuthConfig(provider_type="oauth2_token", config=config))
    user = run(auth.authenticate("opaque-1", {}))
    assert user == User("carol", {"roles": ["carol"], "teams": ["ml", "ops"]})
    sent = idp.requests[-1]
    assert sent["form"] == {"token": "opaque-1"}
    assert sent["headers"]["authorization"] == "Basic " + base64.b64encode(b"stack:s3").decode()
    assert "not active" in refused(auth, "opaque-unknown")
    assert "audience" in refused(auth, "opaque-other")
    config["introspection"]["send_secret_in_body"] = True
    in_body = build_authenticator(AuthConfig(provider_type="oauth2_token", config=config))
    run(in_body.authenticate("opaque-1", {}))
    assert idp.requests[-1]["form"] == {
        "token": "opaque-1",
        "client_id": "stack",
        "client_secret": "s3",
    }


# ---- custom ----------------------------------------------------------------------------


def test_custom_endpoint_gets_llama_stack_request_shape(idp):
    idp.custom_keys["team-key"] = {"principal": "erin", "attributes": {"teams": ["a"]}}
    auth = build_authenticator(
        AuthConfig(provider_type="custom", config={"endpoint": f"{idp.url}/authenticate"})
    )
    scope = {
        "path": "/v1/models",
        "query_string": b"limit=5&x=1&x=2",
        "headers": [
            (b"authorization", b"Bearer team-key"),
            (b"content-type", b"application/json"),
        ],
    }
    assert run(auth.authenticate("team-key", scope)) == User("erin", {"teams": ["a"]})
    assert idp.requests[-1]["body"] == {
        "api_key": "team-key",
        "request": {
            "path": "/v1/models",
            "headers": {"content-type": "application/json"},
            "params": {"limit": ["5"], "x": ["1", "2"]},
        },
    }
    assert "answered 401" in refused(auth, "wrong-key", scope)
    idp.custom_keys["bad-answer"] = {"attributes": {}}
    assert "malformed" in refused(auth, "bad-answer", scope)


def test_an_unreachable_custom_endpoint_refuses():
    auth = build_authenticator(
        AuthConfig(provider_type="custom", config={"endpoint": "http://127.0.0.1:9/auth"})
    )
    assert "failed" in refused(auth, "anything")


# ---- api_key ---------------------------------------------------------------------------


def test_api_keys_map_to_principals_and_attributes():
    auth = build_authenticator(
        AuthConfig(
            provider_type="api_key",
            config={
                "keys": [
                    {"key": "alice-key-0123456789", "principal": "alice"},
                    {
                        "key": "admin-key-0123456789",
                        "principal": "root",
                        "attributes": {"roles": ["admin"]},
                    },
                ]
            },
        )
    )
    assert run(auth.authenticate("alice-key-0123456789", {})) == User("alice", {})
    assert run(auth.authenticate("admin-key-0123456789", {})).attributes == {"roles": ["admin"]}
    assert "unknown API key" in refused(auth, "alice-key-012345678")
