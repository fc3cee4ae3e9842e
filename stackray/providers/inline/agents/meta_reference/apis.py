"""The APIs an agent calls, typed by the protocols they are called through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stackray.api.datatypes import Api
from stackray.api.inference import InferenceApi
from stackray.api.safety import SafetyApi
from stackray.api.tools import ToolRuntimeApi
from stackray.api.vector_io import VectorIOApi


@dataclass(frozen=True)
class AgentApis:
    inference: InferenceApi
    safety: SafetyApi | None = None
    tool_runtime: ToolRuntimeApi | None = None
    vector_io: VectorIOApi | None = None

    @classmethod
    def of(cls, deps: dict[Api, Any]) -> AgentApis:
        """From the `ApiClient`s the stack hands the provider, by API."""
        return cls(
            inference=deps[Api.inference],
            safety=deps.get(Api.safety),
            tool_runtime=deps.get(Api.tool_runtime),
            vector_io=deps.get(Api.vector_io),
        )
