"""An identity provider on loopback for the authentication tests.

`IdentityProvider` holds RSA and EC signing keys and serves, over a real socket (through
`FakeService`):

- ``GET /jwks.json``: the public keys it publishes now (`publish`), optionally only to a
  caller presenting ``Authorization: Bearer <jwks_token>``;
- ``POST /introspect``: RFC 7662 introspection of the opaque tokens it issued (`opaque`);
- ``POST /authenticate``: a `custom` auth endpoint in Llama Stack 0.2.12's shape,
  accepting the keys in `custom_keys`.

`sign(...)` makes real signed JWTs (PyJWT over `cryptography` keys); every request is
recorded, so tests see what the stack sent.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.unit.support.remote_servers import FakeService

ISSUER = "https://idp.test"
AUDIENCE = "llama-stack"


class SigningKey:
    def __init__(self, kid: str, kind: str = "RSA") -> None:
        self.kid = kid
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            self.jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update(kid=kid, alg=self.alg, use="sig")


class IdentityProvider:
    def __init__(self) -> None:
        self.keys = {k.kid: k for k in (SigningKey("key-1"), SigningKey("key-ec", "EC"))}
        self.published: list[str] = ["key-1", "key-ec"]
        self.jwks_token: str | None = None
        self.jwks_reads = 0
        self.opaque: dict[str, dict[str, Any]] = {}
        self.custom_keys: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.service = FakeService(lambda _service: self._app())

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> IdentityProvider:
        self.service.start()
        return self

    def stop(self) -> None:
        self.service.stop()

    def reset(self) -> IdentityProvider:
        self.published = ["key-1", "key-ec"]
        self.jwks_token = None
        self.jwks_reads = 0
        self.opaque.clear()
        self.custom_keys.clear()
        self.requests.clear()
        return self

    @property
    def url(self) -> str:
        return self.service.url

    # ---- tokens -----------------------------------------------------------------------

    def add_key(self, kid: str) -> SigningKey:
        self.keys[kid] = SigningKey(kid)
        return self.keys[kid]

    def publish(self, *kids: str) -> None:
        self.published = list(kids)

    def sign(
        self,
        sub: str = "alice",
        *,
        kid: str = "key-1",
        aud: str | None = AUDIENCE,
        iss: str | None = ISSUER,
        exp_in: float | None = 300,
        nbf_in: float | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"sub": sub, "iat": now, **claims}
        if aud is not None:
            payload["aud"] = aud
        if iss is not None:
            payload["iss"] = iss
        if exp_in is not None:
            payload["exp"] = now + int(exp_in)
        if nbf_in is not None:
            payload["nbf"] = now + int(nbf_in)
        key = self.keys[kid]
        return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": kid})

    @staticmethod
    def unsigned(sub: str = "alice", kid: str = "key-1", **claims: Any) -> str:
        """A token with ``alg: none``: header and claims, no signature."""

        def part(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        payload = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300}
        payload.update(claims)
        return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(payload)}."

    # ---- the HTTP side ----------------------------------------------------------------

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/jwks.json")
        async def jwks(request: Request) -> Any:
            self.requests.append({"path": "/jwks.json", "headers": dict(request.headers)})
            if self.jwks_token and request.headers.get("authorization") != (
                f"Bearer {self.jwks_token}"
            ):
                return JSONResponse({"error": "unauthorized"}, 401)
            self.jwks_reads += 1
            return {"keys": [self.keys[k].jwk for k in self.published]}

        @app.post("/introspect")
        async def introspect(request: Request) -> Any:
            form = dict(await request.form())
            self.requests.append(
                {"path": "/introspect", "headers": dict(request.headers), "form": form}
            )
            fields = self.opaque.get(str(form.get("token")))
            if fields is None:
                return {"active": False}
            return {"active": True, **fields}

        @app.post("/authenticate")
        async def authenticate(request: Request) -> Any:
            body = await request.json()
            self.requests.append({"path": "/authenticate", "body": body})
            answer = self.custom_keys.get(body.get("api_key"))
            if answer is None:
                return JSONResponse({"message": "unknown key"}, 401)
            return answer

        return app
