"""The Safety and Shields APIs: shields (registered safety checks) and running them."""

from __future__ import annotations

from enum import Enum
from typing import Literal, Protocol, runtime_checkable

from pydantic import Field

from stackray.api.common import ApiModel, JsonValue, Message, OpenAIApiModel, ResourceId
from stackray.api.datatypes import Api, ResourceType
from stackray.api.routes import Route


class Shield(ApiModel):
    """A registered shield."""

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.shield] = ResourceType.shield
    params: dict[str, JsonValue] | None = None


class RegisterShieldRequest(ApiModel):
    shield_id: ResourceId
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


# ---------------------------------------------------------------------------------------
# OpenAI-compatible moderations (beyond the contract: /v1/openai/v1/moderations)
# ---------------------------------------------------------------------------------------


class OpenAIModerationRequest(OpenAIApiModel):
    """The body of `POST /v1/openai/v1/moderations`: `model` names the shield to run."""

    input: str | list[str]
    model: str | None = None


class ModerationResult(OpenAIApiModel):
    """One input's verdict, in OpenAI's shape; `user_message` and `metadata` come from the
    shield's violation."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]
    user_message: str | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class ModerationObject(OpenAIApiModel):
    """OpenAI's moderation object: one result per input, in input order."""

    id: str
    model: str
    results: list[ModerationResult]


# ---------------------------------------------------------------------------------------
# What a safety provider implements
# ---------------------------------------------------------------------------------------


@runtime_checkable
class SafetyProvider(Protocol):
    """A safety provider: checks shields when they are registered and runs them.

    The router owns the shields registry; a provider sees a shield when it is registered
    (to reject one it cannot run, naming why) and with each run.
    """

    async def register_shield(self, shield: Shield) -> Shield: ...

    async def unregister_shield(self, shield: Shield) -> None: ...

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, JsonValue]
    ) -> RunShieldResponse: ...


class SafetyApi(Protocol):
    """The Safety API as another API calls it (agents' shields)."""

    async def get_shield(self, identifier: str) -> Shield: ...

    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse: ...


ROUTES = (
    Route("GET", "/v1/shields", Api.shields, "list_shields", returns=ListShieldsResponse),
    Route(
        "POST",
        "/v1/shields",
        Api.shields,
        "register_shield",
        body=RegisterShieldRequest,
        returns=Shield,
    ),
    Route("GET", "/v1/shields/{identifier:path}", Api.shields, "get_shield", returns=Shield),
    Route("DELETE", "/v1/shields/{identifier:path}", Api.shields, "unregister_shield", empty=True),
    Route(
        "POST",
        "/v1/safety/run-shield",
        Api.safety,
        "run_shield",
        body=RunShieldRequest,
        returns=RunShieldResponse,
    ),
    Route(
        "POST",
        "/moderations",
        Api.safety,
        "run_moderation",
        body=OpenAIModerationRequest,
        openai=True,
        returns=ModerationObject,
    ),
)
