"""The Safety and Shields APIs: shields (registered safety checks) and running them."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field

from stackray.api.common import ApiModel, JsonValue, Message
from stackray.api.datatypes import ResourceType


class Shield(ApiModel):
    """A registered shield."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.shield] = ResourceType.shield
    params: dict[str, JsonValue] | None = None


class RegisterShieldRequest(ApiModel):
    shield_id: str
    provider_shield_id: str | None = None
    provider_id: str | None = None
    params: dict[str, JsonValue] | None = None


class ListShieldsResponse(ApiModel):
    data: list[Shield]


class ViolationLevel(str, Enum):
    info = "info"
    warn = "warn"
    error = "error"


class SafetyViolation(ApiModel):
    violation_level: ViolationLevel
    user_message: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class RunShieldRequest(ApiModel):
    shield_id: str
    messages: list[Message]
    params: dict[str, JsonValue] = Field(default_factory=dict)


class RunShieldResponse(ApiModel):
    violation: SafetyViolation | None = None
