from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.cerebras.config import CerebrasImplConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter


class CerebrasInferenceAdapter(OpenAICompatibleInferenceAdapter[CerebrasImplConfig]):
    """`remote::cerebras`: Cerebras' OpenAI-compatible API at `{base_url}/v1`."""

    provider_type = "remote::cerebras"
    provider_data_key = "cerebras_api_key"

    def base_url(self) -> str:
        return f"{self.config.base_url.rstrip('/')}/v1"

    def api_key(self) -> SecretStr | None:
        return self.config.api_key
