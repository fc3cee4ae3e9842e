"""telemetry providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import ProviderSpec

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.telemetry,
        provider_type="inline::meta-reference",
        impl="stackray.providers.inline.telemetry.meta_reference.impl:MetaReferenceTelemetryImpl",
        config_class="stackray.runtime.telemetry.config:TelemetryConfig",
        pip_packages=(
            "opentelemetry-sdk",
            "opentelemetry-exporter-otlp-proto-http",
            "opentelemetry-exporter-otlp-proto-grpc",
        ),
        description="OpenTelemetry tracing and metrics in every replica; spans in SQLite "
        "(queryable), on the console, or sent to an OTLP collector.",
    ),
)
