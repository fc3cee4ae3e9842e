"""Telemetry: traces across deployments, metrics per model and provider, structured logs.

Configured per process from the stack's `inline::meta-reference` telemetry provider
(`configure`); see docs/telemetry.md. Only the OpenTelemetry API and SDK are imported
here; exporters are imported when their sink is configured.
"""

from stackray.runtime.telemetry.config import TelemetryConfig, TelemetrySink, telemetry_config
from stackray.runtime.telemetry.tracing import (
    DEPLOYMENT_ATTR,
    PRINCIPAL_ATTR,
    REPLICA_ATTR,
    ProviderCall,
    TracingMiddleware,
    activate,
    caller_of,
    configure,
    configure_from,
    deployment_name,
    enabled,
    end,
    fail,
    force_flush,
    metrics,
    note_model,
    outgoing,
    parse_traceparent,
    provider_call,
    shutdown,
    start_call_span,
    tag_caller,
    trace_headers,
)

__all__ = [
    "DEPLOYMENT_ATTR",
    "PRINCIPAL_ATTR",
    "REPLICA_ATTR",
    "ProviderCall",
    "TelemetryConfig",
    "TelemetrySink",
    "TracingMiddleware",
    "activate",
    "caller_of",
    "configure",
    "configure_from",
    "deployment_name",
    "enabled",
    "end",
    "fail",
    "force_flush",
    "metrics",
    "note_model",
    "outgoing",
    "parse_traceparent",
    "provider_call",
    "shutdown",
    "start_call_span",
    "tag_caller",
    "telemetry_config",
    "trace_headers",
]
