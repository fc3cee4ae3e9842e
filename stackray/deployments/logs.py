"""Logging inside Serve replicas.

Ray Serve logs every exception a replica method raises as "Request failed." with a
traceback. A `StackError` below 500 is the client's mistake (unknown model, bad field),
already answered with a clear 4xx; a traceback for it would bury real failures.
"""

from __future__ import annotations

import logging

from stackray.api.errors import StackError


class ClientErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, StackError) and exc.status_code < 500:
            return False
        return True


_installed = False


def quiet_client_errors() -> None:
    """Drop Serve's tracebacks for client errors in this process (idempotent)."""
    global _installed
    if _installed:
        return
    logger = logging.getLogger("ray.serve")
    logger.addFilter(ClientErrorFilter())
    for handler in logger.handlers:
        handler.addFilter(ClientErrorFilter())
    _installed = True
