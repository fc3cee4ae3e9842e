"""Settings every remote inference provider shares: how long to wait and how often to retry.

Each provider's config class adds its own fields (named as in Llama Stack 0.2.12's
config for the same provider) to these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class RemoteInferenceConfig(BaseModel):
    """HTTP settings of a remote inference provider."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds to wait for the service to answer (or, while streaming, to send the next piece).",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a connection to the service."
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a request that could not connect or was answered 429 or 503.",
    )
    max_connections: int = Field(
        default=256,
        ge=1,
        description="Connections to the service kept open at most, per replica (each request in flight holds one).",
    )
    retry_backoff_s: float = Field(
        default=0.5,
        ge=0,
        description="Wait before the first retry; it doubles for each further one.",
    )


def parse_tls_verify(value: Any) -> Any:
    """`tls_verify` as Llama Stack takes it: a boolean (also the strings an environment
    variable gives, 'true' / 'false'), or the path of a CA certificate file."""
    if isinstance(value, str):
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"TLS CA certificate file {value!r} does not exist")
        return str(path)
    return value
