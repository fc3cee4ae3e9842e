"""Logging inside Serve replicas.

Ray Serve logs every exception a replica method raises as "Request failed." with a
traceback. A `StackError` below 500 is the client's mistake (unknown model, bad field),
already answered with a clear 4xx; a traceback for it would bury real failures.

stackray's own loggers (`stackray.*`) write one line per record to stderr, which
`stackray run` shows, at the level `STACKRAY_LOG_LEVEL` names (`stackray run
--log-level`), else the telemetry config's `log_level`, else `info`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from stackray.api.errors import StackError
from stackray.runtime.telemetry.logs import HANDLER_NAME as TELEMETRY_HANDLER


class ClientErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, StackError) and exc.status_code < 500:
            return False
        return True


_installed = False


LEVEL_ENV = "STACKRAY_LOG_LEVEL"


def _stderr() -> Any:
    """A text stream on file descriptor 2. A Serve replica replaces `sys.stderr` with a
    stream that `stackray run` never shows (measured: a replica's `print(...,
    file=sys.stderr)` and logging to it reach no log at all, `os.write(2, ...)` reaches
    the driver's console)."""
    global _fd2
    if _fd2 is None:
        _fd2 = os.fdopen(os.dup(2), "w", buffering=1)
    return _fd2


_fd2: Any = None


def configure_stackray_logging() -> None:
    """`stackray.*` records at `STACKRAY_LOG_LEVEL`, one line each, on the process's real
    stderr: through the telemetry handler (with trace ids) when telemetry set one up, else
    through a plain one (idempotent; call it after `telemetry.configure`)."""
    logger = logging.getLogger("stackray")
    # The environment's level (`stackray run --log-level`) wins; else the telemetry
    # config's `log_level` when it set one; else INFO.
    level = logging.getLevelName(os.environ.get(LEVEL_ENV, "").upper())
    if isinstance(level, int):
        logger.setLevel(level)
    elif logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    telemetry = [h for h in logger.handlers if h.get_name() == TELEMETRY_HANDLER]
    ours = [h for h in logger.handlers if getattr(h, "_stackray", False)]
    if telemetry:
        for h in ours:
            logger.removeHandler(h)
        for h in telemetry:
            if isinstance(h, logging.StreamHandler):
                h.setStream(_stderr())
    elif not ours:
        handler = logging.StreamHandler(_stderr())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._stackray = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


def quiet_client_errors() -> None:
    """Drop Serve's tracebacks for client errors in this process, and set up stackray's
    own log lines (idempotent)."""
    global _installed
    configure_stackray_logging()
    if _installed:
        return
    logger = logging.getLogger("ray.serve")
    logger.addFilter(ClientErrorFilter())
    for handler in logger.handlers:
        handler.addFilter(ClientErrorFilter())
    _installed = True
