"""Config of the `inline::meta-reference` telemetry provider.

Every replica of the stack (gateway, API deployments, model servers) reads it from the run
config to set up its own tracer, so it lives here rather than in the provider package.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stackray.api.datatypes import Api

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig


class TelemetrySink(str, Enum):
    sqlite = "sqlite"
    console = "console"
    otlp = "otlp"
    otel_trace = "otel_trace"
    """Llama Stack 0.2.12: spans only, over OTLP/HTTP to `otel_trace_endpoint`."""
    otel_metric = "otel_metric"
    """Llama Stack 0.2.12: metrics only, over OTLP/HTTP to `otel_metric_endpoint`."""


class TelemetryConfig(BaseModel):
    """Where spans, metrics and logs go."""

    model_config = ConfigDict(extra="forbid")

    sinks: list[TelemetrySink] = Field(
        default_factory=lambda: [TelemetrySink.sqlite],
        description="Span sinks: 'sqlite' (queryable through the telemetry API), 'console' "
        "(printed by each replica), 'otlp' (spans and metrics sent to an OpenTelemetry "
        "collector); Llama Stack 0.2.12's 'otel_trace' (spans only, to otel_trace_endpoint) "
        "and 'otel_metric' (metrics only, to otel_metric_endpoint).",
    )
    otel_trace_endpoint: str = Field(
        default="http://localhost:4318/v1/traces",
        description="OTLP/HTTP URL of the 'otel_trace' sink (Llama Stack 0.2.12).",
    )
    otel_metric_endpoint: str = Field(
        default="http://localhost:4318/v1/metrics",
        description="OTLP/HTTP URL of the 'otel_metric' sink (Llama Stack 0.2.12).",
    )
    sqlite_db_path: str | None = Field(
        default=None,
        description="SQLite file of the spans, events and metric points; default "
        "<data_dir>/telemetry/trace_store.db. Shared by every replica on the node.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="Collector base URL for the 'otlp' sink, e.g. http://localhost:4318 "
        "(HTTP; '/v1/traces' and '/v1/metrics' are appended) or localhost:4317 (gRPC).",
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        default="http/protobuf", description="OTLP transport of the 'otlp' sink."
    )
    sampling_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded (0 records none; a sampled caller's "
        "decision is always followed).",
    )
    service_name: str = Field(
        default="stackray", description="OpenTelemetry `service.name` of every replica."
    )
    export_interval_ms: int = Field(
        default=1000,
        ge=10,
        description="Longest time a finished span or metric point waits before it is written.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Format of the 'stackray' loggers: text, or one JSON object per line; "
        "both carry the trace and span ids of the request being served.",
    )
    log_level: str | None = Field(
        default=None, description="Level of the 'stackray' loggers (e.g. INFO); unchanged if unset."
    )

    @field_validator("sinks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # From an environment variable: "sqlite,otlp".
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("otel_exporter_otlp_endpoint", "sqlite_db_path", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def db_path(self, data_dir: Path) -> Path:
        if self.sqlite_db_path:
            return Path(self.sqlite_db_path).expanduser()
        return data_dir / "telemetry" / "trace_store.db"


def telemetry_config(stack: StackConfig) -> TelemetryConfig | None:
    """The stack's telemetry settings: those of its first telemetry provider, or None when
    the stack does not serve the telemetry API (tracing is then off everywhere)."""
    if Api.telemetry not in stack.apis:
        return None
    for provider in stack.providers_of(Api.telemetry):
        if provider.provider_type == "inline::meta-reference":
            return TelemetryConfig.model_validate(provider.config)
    return None
