from __future__ import annotations

from pydantic import Field

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class NVIDIASafetyConfig(RemoteInferenceConfig):
    """Settings of `remote::nvidia` safety, with Llama Stack 0.2.12's fields."""

    guardrails_service_url: str = Field(
        default="http://0.0.0.0:7331",
        description="Root URL of the NeMo Guardrails microservice.",
    )
    config_id: str = Field(
        default="self-check",
        description="The guardrails configuration (from the service's configuration store) "
        "a check runs.",
    )
