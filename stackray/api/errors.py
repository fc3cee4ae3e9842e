"""The error hierarchy.

Providers and routers raise these; the gateway maps them to HTTP responses in one place
(`stackray.deployments.gateway`). Anything else that escapes a handler is a bug and is
reported as a 500 with the exception type named.
"""

from __future__ import annotations


class StackError(Exception):
    """Base class: every error a client can cause or observe."""

    status_code: int = 500
    error_type: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        detail: dict[str, object] = {"type": self.error_type, "message": self.message}
        if self.field is not None:
            detail["field"] = self.field
        return detail

    # Exceptions cross Ray actor boundaries by pickling; keep the keyword arguments.
    def __reduce__(self):  # type: ignore[override]
        return (_rebuild, (type(self), self.message, self.field, self.__dict__.copy()))


def _rebuild(cls: type[StackError], message: str, field: str | None, state: dict) -> StackError:
    err = cls.__new__(cls)
    StackError.__init__(err, message, field=field)
    err.__dict__.update(state)
    return err


class BadRequestError(StackError):
    """The request is malformed or asks for something impossible (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class NotFoundError(StackError):
    """A resource named in the request does not exist (404)."""

    status_code = 404
    error_type = "not_found_error"


class MethodNotAllowedError(StackError):
    """The route exists but does not take the request's method (405)."""

    status_code = 405
    error_type = "method_not_allowed"


class ConflictError(StackError):
    """The resource already exists, or is in a state that forbids the operation (409)."""

    status_code = 409
    error_type = "conflict_error"


class PayloadTooLargeError(StackError):
    """The request body (an uploaded file) is larger than the stack accepts (413)."""

    status_code = 413
    error_type = "request_too_large"


class AuthenticationError(StackError):
    status_code = 401
    error_type = "authentication_error"


class PermissionDeniedError(StackError):
    status_code = 403
    error_type = "permission_denied_error"


class QuotaExceededError(StackError):
    status_code = 429
    error_type = "rate_limit_error"


class ProviderError(StackError):
    """A provider (model server, remote service) failed while serving the request (502)."""

    status_code = 502
    error_type = "provider_error"

    def __init__(self, message: str, *, provider_id: str | None = None, field: str | None = None):
        if provider_id and provider_id not in message:
            message = f"provider '{provider_id}': {message}"
        super().__init__(message, field=field)
        self.provider_id = provider_id


class ServiceUnavailableError(StackError):
    """The stack or a provider is overloaded or not ready (503)."""

    status_code = 503
    error_type = "service_unavailable_error"


class ProviderTimeoutError(StackError):
    status_code = 504
    error_type = "timeout_error"


class ConfigError(Exception):
    """The run config is invalid. Raised at start, never during a request."""
