"""Request-scoped values that travel with a call from the gateway to the providers.

The gateway builds a `RequestContext` from the HTTP request; deployments receive it with
every call (`call_api` / `call_api_stream`) and set it for the duration of the call, so a
provider reads it without it being threaded through every signature.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from stackray.api.errors import BadRequestError

PROVIDER_DATA_HEADER = "X-LlamaStack-Provider-Data"


@dataclass(frozen=True)
class User:
    """The authenticated caller: a principal and the attributes access rules read
    (``{"roles": [...], "teams": [...], ...}``), as Llama Stack 0.2.12's `User`."""

    principal: str
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"principal": self.principal, "attributes": self.attributes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> User:
        return cls(principal=str(data["principal"]), attributes=dict(data.get("attributes") or {}))


@dataclass(frozen=True)
class RequestContext:
    """What a provider may need to know about the request it serves."""

    provider_data: dict[str, Any] | None = None
    """Per-request provider settings (e.g. API keys) from the `X-LlamaStack-Provider-Data` header."""
    traceparent: str | None = None
    """W3C trace context of the caller's current span (None when tracing is off), so the
    callee's spans join the request's trace (`stackray.runtime.telemetry`)."""
    tracestate: str | None = None
    """W3C `tracestate` travelling with `traceparent`."""
    sent_at: float | None = None
    """Wall-clock time (Unix seconds) the caller sent this call; the callee's queue time."""
    user: User | None = None
    """The authenticated caller (None when the stack has no `server.auth`): every router
    checks its access to each resource against it, in whichever deployment it runs."""


request_context_var: ContextVar[RequestContext | None] = ContextVar(
    "stackray_request_context", default=None
)
provider_data_var: ContextVar[dict[str, Any] | None] = ContextVar(
    "stackray_provider_data", default=None
)


def current_provider_data() -> dict[str, Any] | None:
    return provider_data_var.get()


def current_user() -> User | None:
    """The caller of the request being served; None without authentication (or outside
    a request: start-up registration of the run config's resources)."""
    ctx = request_context_var.get()
    return ctx.user if ctx is not None else None


def parse_provider_data(header: str | None) -> dict[str, Any] | None:
    """The header's JSON object; a 400 naming the header when it is not one."""
    if not header:
        return None
    try:
        data = json.loads(header)
    except ValueError as e:
        raise BadRequestError(
            f"{PROVIDER_DATA_HEADER} is not valid JSON: {e}", field=PROVIDER_DATA_HEADER
        ) from None
    if not isinstance(data, dict):
        raise BadRequestError(
            f"{PROVIDER_DATA_HEADER} must be a JSON object", field=PROVIDER_DATA_HEADER
        )
    return data


class use_context:
    """Set `ctx` as the current request context within a `with` block."""

    def __init__(self, ctx: RequestContext | None) -> None:
        self.ctx = ctx

    def __enter__(self) -> RequestContext | None:
        self._tokens = (
            request_context_var.set(self.ctx),
            provider_data_var.set(self.ctx.provider_data if self.ctx else None),
        )
        return self.ctx

    def __exit__(self, *exc: object) -> None:
        request_context_var.reset(self._tokens[0])
        provider_data_var.reset(self._tokens[1])
