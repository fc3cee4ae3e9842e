from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.openai.config import OpenAIConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter


class OpenAIInferenceAdapter(OpenAICompatibleInferenceAdapter[OpenAIConfig]):
    """`remote::openai`: OpenAI's API at `url`."""

    provider_type = "remote::openai"
    provider_data_key = "openai_api_key"
    # OpenAI's reasoning models refuse max_tokens in chat completions; all take this.
    max_tokens_field = "max_completion_tokens"

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_key
