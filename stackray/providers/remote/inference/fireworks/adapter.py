from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.fireworks.config import FireworksImplConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter


class FireworksInferenceAdapter(OpenAICompatibleInferenceAdapter[FireworksImplConfig]):
    """`remote::fireworks`: Fireworks AI's OpenAI-compatible API at `url`."""

    provider_type = "remote::fireworks"
    provider_data_key = "fireworks_api_key"
    supports_top_k = True
    supports_repetition_penalty = True

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_key
