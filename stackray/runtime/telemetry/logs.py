"""Structured logs: every record of the ``stackray`` loggers carries the trace and span
ids of the request being served (``trace_id`` / ``span_id``), as text or one JSON object
per line (`TelemetryConfig.log_format`)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from stackray.runtime.telemetry.config import TelemetryConfig

LOGGER_NAMESPACE = "stackray"
TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [trace_id=%(trace_id)s span_id=%(span_id)s] %(message)s"
)


class TraceIdsFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (empty outside a traced request) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        sc = trace.get_current_span().get_span_context()
        record.trace_id = f"{sc.trace_id:032x}" if sc.is_valid else ""
        record.span_id = f"{sc.span_id:016x}" if sc.is_valid else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", "") or None,
            "span_id": getattr(record, "span_id", "") or None,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


HANDLER_NAME = "stackray-telemetry"
_HANDLER_NAME = HANDLER_NAME


def configure_logging(config: TelemetryConfig) -> logging.Handler:
    """Give the ``stackray`` logger one handler with trace ids (replacing an earlier one)."""
    logger = logging.getLogger(LOGGER_NAMESPACE)
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(TraceIdsFilter())
    handler.setFormatter(
        JsonFormatter() if config.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logger.addHandler(handler)
    logger.propagate = False
    if config.log_level:
        logger.setLevel(config.log_level.upper())
    return handler
