from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.providers.remote.inference.together.config import TogetherImplConfig


class TogetherInferenceAdapter(OpenAICompatibleInferenceAdapter[TogetherImplConfig]):
    """`remote::together`: Together AI's OpenAI-compatible API at `url`."""

    provider_type = "remote::together"
    provider_data_key = "together_api_key"
    supports_top_k = True
    supports_repetition_penalty = True

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_key
