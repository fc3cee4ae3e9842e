"""Settings of `remote::model-context-protocol`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MCPProviderConfig(BaseModel):
    """How stackray talks to the MCP servers that tool groups point at."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["auto", "streamable_http", "sse"] = Field(
        default="auto",
        description=(
            "MCP transport. auto: SSE for an endpoint whose path ends in /sse, otherwise "
            "streamable HTTP, falling back to SSE when the endpoint answers 404/405/400."
        ),
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one tool listing or tool call may take, connection included.",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds to wait for each HTTP request's connection."
    )
    session_idle_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Seconds an MCP session stays open after its last call, for the next call to the "
            "same endpoint with the same headers to reuse; 0 opens a session per call."
        ),
    )
    max_sessions: int = Field(
        default=64, ge=1, description="Open MCP sessions kept at most (per replica)."
    )


class MCPProviderDataValidator(BaseModel):
    """The provider data (X-LlamaStack-Provider-Data) this provider reads."""

    model_config = ConfigDict(extra="allow")

    mcp_headers: dict[str, dict[str, str] | list[str]] | None = Field(
        default=None,
        description=(
            "Per-endpoint HTTP headers: {endpoint_uri: {header: value}} "
            '(or {endpoint_uri: ["Header: value", ...]}), e.g. an Authorization header.'
        ),
    )
