from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.providers.remote.inference.sambanova.config import SambaNovaImplConfig


class SambaNovaInferenceAdapter(OpenAICompatibleInferenceAdapter[SambaNovaImplConfig]):
    """`remote::sambanova`: SambaNova Cloud's OpenAI-compatible API at `url`."""

    provider_type = "remote::sambanova"
    provider_data_key = "sambanova_api_key"
    supports_top_k = True

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_key
