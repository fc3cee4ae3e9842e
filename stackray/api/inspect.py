"""The Inspect and Providers APIs: health, version, routes and providers of the stack."""

from __future__ import annotations

from enum import Enum

from stackray.api.common import ApiModel, JsonValue


class HealthStatus(str, Enum):
    """The health of the stack or of one provider."""

    OK = "OK"
    Error = "Error"
    NOT_IMPLEMENTED = "Not Implemented"


class HealthInfo(ApiModel):
    """The body of `GET /v1/health`."""

    status: HealthStatus


class VersionInfo(ApiModel):
    """The body of `GET /v1/version`."""

    version: str


class RouteInfo(ApiModel):
    """A route the stack serves, with the provider types behind it."""

    route: str
    method: str
    provider_types: list[str]


class ListRoutesResponse(ApiModel):
    """The body of `GET /v1/inspect/routes`."""

    data: list[RouteInfo]


class ProviderInfo(ApiModel):
    """A configured provider.

    `config` is the provider's configuration with secrets redacted; `health` holds at
    least `status` (a `HealthStatus` value), and `message` when it is not OK.
    """

    api: str
    provider_id: str
    provider_type: str
    config: dict[str, JsonValue]
    health: dict[str, JsonValue]


class ListProvidersResponse(ApiModel):
    """The body of `GET /v1/providers`."""

    data: list[ProviderInfo]
