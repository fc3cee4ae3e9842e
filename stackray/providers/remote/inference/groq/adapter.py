from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.groq.config import GroqConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter


class GroqInferenceAdapter(OpenAICompatibleInferenceAdapter[GroqConfig]):
    """`remote::groq`: GroqCloud's OpenAI-compatible API at `{url}/openai/v1`."""

    provider_type = "remote::groq"
    provider_data_key = "groq_api_key"

    def base_url(self) -> str:
        return f"{self.config.url.rstrip('/')}/openai/v1"

    def api_key(self) -> SecretStr | None:
        return self.config.api_key
