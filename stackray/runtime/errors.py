"""What a client sees of any exception: `to_stack_error`, the one mapping used everywhere
(provider guards, the gateway, the agent loop, jobs).

Ray wraps an exception raised in another actor in a `RayTaskError`; `unwrap` finds the
original, so a `StackError` raised three handle hops away reaches the client unchanged.
"""

from __future__ import annotations

import asyncio
import logging

from stackray.api.errors import (
    ProviderError,
    ProviderTimeoutError,
    ServiceUnavailableError,
    StackError,
)

logger = logging.getLogger("stackray.errors")

# Ray's errors for a replica or actor that is gone, restarting or overloaded (matched by
# name: this module must not import Ray).
_UNAVAILABLE = {
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "BackPressureError",
    "DeploymentUnavailableError",
    "WorkerCrashedError",
    "NodeDiedError",
}


def unwrap(exc: BaseException) -> BaseException:
    """The original exception of one raised in another Ray actor."""
    for _ in range(5):
        cause = getattr(exc, "cause", None)
        if cause is None or not type(exc).__name__.startswith("RayTaskError"):
            break
        exc = cause
    return exc


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says a replica or actor is gone, restarting or overloaded."""
    return any(t.__name__ in _UNAVAILABLE for t in type(exc).__mro__)


def to_stack_error(
    exc: BaseException, provider_id: str | None = None, *, api: str | None = None
) -> StackError:
    """The `StackError` a client sees for `exc`.

    `provider_id`: `exc` escaped that provider, and the error names it (502 / 503 / 504);
    `api`: `exc` came back from a call of that API (502 naming it). Without either, an
    exception that is no `StackError` is a bug of ours: logged with its
    traceback, and a 500 naming its type.
    """
    exc = unwrap(exc)
    if isinstance(exc, StackError):
        return exc
    if is_unavailable(exc):
        if provider_id is not None:
            return ServiceUnavailableError(
                f"provider '{provider_id}' is unavailable: {type(exc).__name__}: {exc}"
            )
        return ServiceUnavailableError(
            f"the stack is overloaded or restarting, retry later ({type(exc).__name__})"
        )
    if api is not None:
        return ProviderError(f"the {api} API failed: {type(exc).__name__}: {exc}")
    if provider_id is not None:
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            return ProviderTimeoutError(f"provider '{provider_id}' timed out")
        return ProviderError(f"{type(exc).__name__}: {exc}", provider_id=provider_id)
    logger.error("unexpected error", exc_info=exc)
    return StackError(f"internal error: {type(exc).__name__}: {exc}")
