"""Who is calling: `server.auth` of the run config (Llama Stack 0.2.12's shape).

``server.auth: {provider_type, config, access_policy}``; `provider_type` is one of

- ``oauth2_token``: a JWT verified against the keys of a JWKS (``jwks.uri``, re-read
  every ``key_recheck_period`` seconds and when a token names a key not seen yet), with
  its signature, ``exp`` (required), ``nbf``, ``aud`` and ``iss`` checked; or an opaque
  token checked by RFC 7662 introspection (``introspection.url``). `claims_mapping`
  turns claims into the caller's attributes.
- ``custom``: the token POSTed to an endpoint of the operator's with 0.2.12's request
  shape (``{api_key, request: {path, headers, params}}``), answering
  ``{principal, attributes}`` with status 200 to accept.
- ``api_key``: static keys, each mapped to a principal and attributes. Only the
  SHA-256 of each key is kept (the plain key is hashed when the config is read, and
  replicas receive the hashes only).

`build_authenticator` makes the `Authenticator` the gateway asks for every request
(except ``/v1/health`` and ``/v1/version``). A failure is an `AuthenticationError` whose
message is the same whatever went wrong; the reason is logged, never the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from stackray.api.errors import AuthenticationError
from stackray.runtime.access_control import AccessRule
from stackray.runtime.request_context import User

logger = logging.getLogger("stackray.auth")

PUBLIC_PATHS = frozenset({"/v1/health", "/v1/version"})
"""Paths served without credentials: probes and load balancers call them."""

FAILED = "missing or invalid credentials"
"""The one message of every authentication failure: nothing in it helps a guesser."""

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Signature algorithms a JWT may use. `none` and the HMAC ones are refused: a JWKS
publishes public keys, and an HMAC "signed" with a public key proves nothing."""

CLOCK_SKEW_S = 10
"""Leeway on `exp` and `nbf` for clocks that disagree a little."""

UNKNOWN_KEY_REFETCH_S = 10.0
"""A token naming a key not in the cached JWKS re-reads the JWKS (a rotated key is picked
up at once), at most once per this many seconds, so unknown key ids cannot flood the
identity provider."""

JWKS_RETRY_S = 5.0
"""After a failed read of the JWKS, the next periodic try waits this long."""

HTTP_TIMEOUT_S = 10.0


def default_claims_mapping() -> dict[str, str]:
    # Llama Stack 0.2.12's defaults: claim -> attribute category.
    return {
        "sub": "roles",
        "username": "roles",
        "groups": "teams",
        "team": "teams",
        "project": "projects",
        "tenant": "namespaces",
        "namespace": "namespaces",
    }


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- configs ---------------------------------------------------------------------------


class OAuth2JWKSConfig(_Strict):
    uri: str = Field(description="URL of the JWKS holding the token signing keys.")
    token: str | None = Field(
        default=None, description="Bearer token sent when reading the JWKS (Kubernetes)."
    )
    key_recheck_period: int = Field(
        default=3600, ge=0, description="Seconds between re-reads of the JWKS."
    )


class OAuth2IntrospectionConfig(_Strict):
    url: str = Field(description="RFC 7662 token introspection endpoint.")
    client_id: str = Field(description="Client id the stack introspects with.")
    client_secret: str = Field(description="Its secret.")
    send_secret_in_body: bool = Field(
        default=False,
        description="Send client id and secret in the form body instead of HTTP basic auth.",
    )


class OAuth2TokenConfig(_Strict):
    """`provider_type: oauth2_token`."""

    audience: str = Field(default="llama-stack", description="Required `aud` of a JWT.")
    issuer: str | None = Field(default=None, description="Required `iss` of a JWT, if set.")
    verify_tls: bool = Field(
        default=True, description="Verify the TLS certificate of the JWKS / introspection URL."
    )
    tls_cafile: Path | None = Field(
        default=None, description="CA bundle for the JWKS / introspection URL."
    )
    claims_mapping: dict[str, str] = Field(
        default_factory=default_claims_mapping,
        description="Claim name -> attribute category (roles, teams, projects, namespaces ...).",
    )
    jwks: OAuth2JWKSConfig | None = Field(default=None, description="Verify JWTs locally.")
    introspection: OAuth2IntrospectionConfig | None = Field(
        default=None, description="Ask the identity provider about each token."
    )

    @field_validator("claims_mapping")
    @classmethod
    def _no_empty_category(cls, mapping: dict[str, str]) -> dict[str, str]:
        for claim, category in mapping.items():
            if not category:
                raise ValueError(f"claim {claim!r} maps to an empty attribute category")
        return mapping

    @model_validator(mode="after")
    def _one_mode(self) -> OAuth2TokenConfig:
        if (self.jwks is None) == (self.introspection is None):
            raise ValueError("set exactly one of jwks or introspection")
        return self

    def verify(self) -> bool | str:
        return str(self.tls_cafile) if self.tls_cafile else self.verify_tls


class CustomAuthConfig(_Strict):
    """`provider_type: custom`."""

    endpoint: str = Field(description="URL the token and request are POSTed to.")


MIN_API_KEY_LENGTH = 16


class ApiKey(_Strict):
    """One static key of `provider_type: api_key`."""

    key: str | None = Field(
        default=None,
        description=f"The key itself (at least {MIN_API_KEY_LENGTH} characters), e.g. "
        "`${env.TEAM_A_KEY}`; hashed when read.",
    )
    key_sha256: str | None = Field(
        default=None, description="Hex SHA-256 of the key, instead of the key."
    )
    principal: str = Field(min_length=1, description="Who presents this key.")
    attributes: dict[str, list[str]] = Field(
        default_factory=dict, description="Attributes for access rules (roles, teams ...)."
    )

    @field_validator("key")
    @classmethod
    def _long_enough(cls, key: str | None) -> str | None:
        if key is not None and len(key) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"an API key has at least {MIN_API_KEY_LENGTH} characters (use a random one)"
            )
        return key

    @field_validator("key_sha256")
    @classmethod
    def _hex_digest(cls, digest: str | None) -> str | None:
        if digest is not None:
            digest = digest.lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("expected 64 hex digits (the SHA-256 of the key)")
        return digest

    @model_validator(mode="after")
    def _hash_it(self) -> ApiKey:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("set exactly one of key or key_sha256")
        if self.key is not None:
            self.key_sha256 = hash_api_key(self.key)
            self.key = None  # only the hash is kept
        return self


class ApiKeyAuthConfig(_Strict):
    """`provider_type: api_key`."""

    keys: list[ApiKey] = Field(min_length=1, description="The accepted keys.")

    @model_validator(mode="after")
    def _distinct(self) -> ApiKeyAuthConfig:
        digests = [k.key_sha256 for k in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("the same key is listed twice")
        return self


def hash_api_key(key: str) -> str:
    # API keys are random (a minimum length is enforced), so a fast hash is enough: a
    # slow password hash would only add latency to every request.
    return hashlib.sha256(key.encode()).hexdigest()


PROVIDER_CONFIGS: dict[str, type[BaseModel]] = {
    "oauth2_token": OAuth2TokenConfig,
    "custom": CustomAuthConfig,
    "api_key": ApiKeyAuthConfig,
}
NOT_BUILT = {"github_token": "GitHub token authentication is not implemented in this version"}


class AuthConfig(_Strict):
    """`server.auth`: how callers authenticate, and the access rules of resources."""

    provider_type: str = Field(description="oauth2_token, custom or api_key.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Settings of that provider type."
    )
    access_policy: list[AccessRule] = Field(
        default_factory=list,
        description="Access rules, tried in order; empty: the default policy (owners' attributes).",
    )
    _parsed: BaseModel = PrivateAttr()

    @field_validator("provider_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.lower()
        if value in NOT_BUILT:
            raise ValueError(f"{value}: {NOT_BUILT[value]}; use oauth2_token, custom or api_key")
        if value not in PROVIDER_CONFIGS:
            raise ValueError(
                f"unknown provider_type {value!r}; expected one of {', '.join(PROVIDER_CONFIGS)}"
            )
        return value

    @model_validator(mode="after")
    def _parse_config(self) -> AuthConfig:
        try:
            self._parsed = PROVIDER_CONFIGS[self.provider_type].model_validate(self.config)
        except ValidationError as e:
            problems = []
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"config{'.' + loc if loc else ''}: {err['msg']}")
            raise ValueError("; ".join(problems)) from None
        # Replicas receive the config as data: let it carry key hashes, never keys.
        self.config = self._parsed.model_dump(mode="json", exclude_none=True)
        return self

    @property
    def parsed(self) -> BaseModel:
        return self._parsed


def harden_raw_config(raw: dict[str, Any], auth: AuthConfig | None) -> dict[str, Any]:
    """`raw` (the config mapping replicas receive) with `server.auth.config` replaced by
    its parsed form: api keys as their hashes only."""
    if auth is None:
        return raw
    server = dict(raw.get("server") or {})
    server["auth"] = dict(server.get("auth") or {}, config=auth.config)
    return dict(raw, server=server)


# ---- authenticators --------------------------------------------------------------------


class Authenticator:
    """Turns the bearer token of a request into its `User`, or raises
    `AuthenticationError` (message `FAILED`, the reason in the log)."""

    async def authenticate(self, token: str, scope: dict[str, Any]) -> User:
        raise NotImplementedError


def _refused(reason: str) -> AuthenticationError:
    err = AuthenticationError(FAILED)
    err.reason = reason  # type: ignore[attr-defined]
    return err


def attributes_from_claims(claims: dict[str, Any], mapping: dict[str, str]) -> dict[str, list[str]]:
    """Attribute categories from claims: a list claim gives its items, a string claim its
    space-separated words (OAuth's `scope` style)."""
    attributes: dict[str, list[str]] = {}
    for claim, category in mapping.items():
        value = claims.get(claim)
        if value is None:
            continue
        if isinstance(value, list):
            values = [str(v) for v in value if not isinstance(v, dict | list)]
        elif isinstance(value, dict):
            continue
        else:
            values = str(value).split()
        attributes.setdefault(category, []).extend(values)
    return attributes


class JWKSAuthenticator(Authenticator):
    def __init__(self, config: OAuth2TokenConfig) -> None:
        assert config.jwks is not None
        self.config = config
        self.jwks = config.jwks
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self.unknown_key_refetch_s = UNKNOWN_KEY_REFETCH_S

    async def _refresh(self, due: Callable[[float], bool]) -> None:
        async with self._lock:
            if not due(time.monotonic()):
                return  # another request just re-read it
            self._attempted_at = time.monotonic()
            headers = {"Authorization": f"Bearer {self.jwks.token}"} if self.jwks.token else {}
            try:
                async with httpx.AsyncClient(verify=self.config.verify()) as client:
                    res = await client.get(self.jwks.uri, headers=headers, timeout=HTTP_TIMEOUT_S)
                res.raise_for_status()
                keys = res.json()["keys"]
            except Exception as exc:  # keep the keys we have; try again later
                logger.warning("reading the JWKS at %s failed: %s", self.jwks.uri, exc)
                return
            self._keys = {
                k["kid"]: k
                for k in keys
                if isinstance(k, dict) and k.get("kid") and k.get("use", "sig") == "sig"
            }
            self._fetched_at = time.monotonic()

    def _stale(self, now: float) -> bool:
        return (
            now - self._fetched_at > self.jwks.key_recheck_period
            and now - self._attempted_at > min(self.jwks.key_recheck_period, JWKS_RETRY_S)
        )

    def _may_look_for_new_keys(self, now: float) -> bool:
        return now - self._attempted_at > self.unknown_key_refetch_s

    async def _key(self, kid: str) -> dict[str, Any] | None:
        if self._stale(time.monotonic()):
            await self._refresh(self._stale)
        if kid not in self._keys and self._may_look_for_new_keys(time.monotonic()):
            await self._refresh(self._may_look_for_new_keys)
        return self._keys.get(kid)

    async def authenticate(self, token: str, scope: dict[str, Any]) -> User:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise _refused(f"algorithm {alg!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise _refused("the token names no key (kid)")
        key_data = await self._key(kid)
        if key_data is None:
            raise _refused(f"unknown key {kid!r}")
        if key_data.get("alg") not in (None, alg):
            raise _refused(f"key {kid!r} is for {key_data.get('alg')}, the token uses {alg}")
        try:
            key = jwt.PyJWK(key_data, algorithm=alg)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=CLOCK_SKEW_S,
                options={"require": ["exp", "sub"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _refused(f"{type(exc).__name__}: {exc}") from None
        return User(
            principal=str(claims["sub"]),
            attributes=attributes_from_claims(claims, self.config.claims_mapping),
        )


class IntrospectionAuthenticator(Authenticator):
    def __init__(self, config: OAuth2TokenConfig) -> None:
        assert config.introspection is not None
        self.config = config
        self.introspection = config.introspection

    async def authenticate(self, token: str, scope: dict[str, Any]) -> User:
        intro = self.introspection
        form = {"token": token}
        basic: httpx.Auth | None = httpx.BasicAuth(intro.client_id, intro.client_secret)
        if intro.send_secret_in_body:
            form.update(client_id=intro.client_id, client_secret=intro.client_secret)
            basic = None
        try:
            async with httpx.AsyncClient(verify=self.config.verify(), auth=basic) as client:
                res = await client.post(intro.url, data=form, timeout=HTTP_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise _refused(f"introspection request failed: {exc}") from None
        if res.status_code != 200:
            raise _refused(f"introspection answered {res.status_code}")
        try:
            fields = res.json()
        except ValueError:
            raise _refused("introspection answered no JSON") from None
        if not isinstance(fields, dict) or fields.get("active") is not True:
            raise _refused("token is not active")
        if fields.get("aud") is not None:
            aud = fields["aud"] if isinstance(fields["aud"], list) else [fields["aud"]]
            if self.config.audience not in aud:
                raise _refused("token is for another audience")
        if self.config.issuer is not None and fields.get("iss") not in (None, self.config.issuer):
            raise _refused("token is from another issuer")
        principal = fields.get("sub") or fields.get("username")
        if not principal:
            raise _refused("introspection names no subject")
        return User(str(principal), attributes_from_claims(fields, self.config.claims_mapping))


class _CustomAnswer(BaseModel):
    principal: str = Field(min_length=1)
    attributes: dict[str, list[str]] | None = None
    message: str | None = None


class CustomAuthenticator(Authenticator):
    def __init__(self, config: CustomAuthConfig) -> None:
        self.config = config

    async def authenticate(self, token: str, scope: dict[str, Any]) -> User:
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k.lower() != b"authorization"
        }
        body = {
            "api_key": token,
            "request": {
                "path": scope.get("path", ""),
                "headers": headers,
                "params": parse_qs(scope.get("query_string", b"").decode("latin-1")),
            },
        }
        try:
            async with httpx.AsyncClient() as client:
                res = await client.post(self.config.endpoint, json=body, timeout=HTTP_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise _refused(f"the auth endpoint failed: {exc}") from None
        if res.status_code != 200:
            raise _refused(f"the auth endpoint answered {res.status_code}")
        try:
            answer = _CustomAnswer.model_validate_json(res.content)
        except ValidationError as exc:
            raise _refused(f"the auth endpoint's answer is malformed: {exc}") from None
        return User(answer.principal, answer.attributes or {})


class ApiKeyAuthenticator(Authenticator):
    def __init__(self, config: ApiKeyAuthConfig) -> None:
        self._by_digest = {k.key_sha256: k for k in config.keys}

    async def authenticate(self, token: str, scope: dict[str, Any]) -> User:
        digest = hash_api_key(token)
        match = None
        for known, entry in self._by_digest.items():
            if hmac.compare_digest(known or "", digest):
                match = entry
        if match is None:
            raise _refused("unknown API key")
        return User(match.principal, {k: list(v) for k, v in match.attributes.items()})


def build_authenticator(auth: AuthConfig | None) -> Authenticator | None:
    if auth is None:
        return None
    parsed = auth.parsed
    if isinstance(parsed, OAuth2TokenConfig):
        if parsed.jwks is not None:
            return JWKSAuthenticator(parsed)
        return IntrospectionAuthenticator(parsed)
    if isinstance(parsed, CustomAuthConfig):
        return CustomAuthenticator(parsed)
    if isinstance(parsed, ApiKeyAuthConfig):
        return ApiKeyAuthenticator(parsed)
    raise TypeError(f"no authenticator for {type(parsed).__name__}")


def bearer_token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


__all__ = [
    "ApiKeyAuthConfig",
    "AuthConfig",
    "Authenticator",
    "CustomAuthConfig",
    "FAILED",
    "OAuth2TokenConfig",
    "PUBLIC_PATHS",
    "bearer_token",
    "build_authenticator",
    "harden_raw_config",
    "hash_api_key",
]
