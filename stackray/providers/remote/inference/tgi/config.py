from __future__ import annotations

from pydantic import Field

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class TGIImplConfig(RemoteInferenceConfig):
    """Settings of `remote::tgi`, with Llama Stack 0.2.12's field."""

    url: str = Field(description="Root URL of the TGI server (http://host:8080).")
