"""The `-openai-compat` adapters: each is the OpenAI-compatible adapter at the configured
`openai_compat_api_base`, taking the service's key from the config or the request."""

from __future__ import annotations

from typing import TypeVar

from pydantic import SecretStr

from stackray.providers.remote.inference.compat.config import (
    CerebrasCompatConfig,
    FireworksCompatConfig,
    GroqCompatConfig,
    LlamaCompatConfig,
    OpenAICompatServiceConfig,
    SambaNovaCompatConfig,
    TogetherCompatConfig,
)
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter

C = TypeVar("C", bound=OpenAICompatServiceConfig)


class _CompatAdapter(OpenAICompatibleInferenceAdapter[C]):
    def base_url(self) -> str:
        return self.config.openai_compat_api_base

    def api_key(self) -> SecretStr | None:
        return self.config.api_key


class LlamaCompatInferenceAdapter(_CompatAdapter[LlamaCompatConfig]):
    """`remote::llama-openai-compat`: Meta's Llama API."""

    provider_type = "remote::llama-openai-compat"
    provider_data_key = "llama_api_key"


class CerebrasCompatInferenceAdapter(_CompatAdapter[CerebrasCompatConfig]):
    """`remote::cerebras-openai-compat`."""

    provider_type = "remote::cerebras-openai-compat"
    provider_data_key = "cerebras_api_key"


class FireworksCompatInferenceAdapter(_CompatAdapter[FireworksCompatConfig]):
    """`remote::fireworks-openai-compat`."""

    provider_type = "remote::fireworks-openai-compat"
    provider_data_key = "fireworks_api_key"


class GroqCompatInferenceAdapter(_CompatAdapter[GroqCompatConfig]):
    """`remote::groq-openai-compat`."""

    provider_type = "remote::groq-openai-compat"
    provider_data_key = "groq_api_key"


class TogetherCompatInferenceAdapter(_CompatAdapter[TogetherCompatConfig]):
    """`remote::together-openai-compat`."""

    provider_type = "remote::together-openai-compat"
    provider_data_key = "together_api_key"
    supports_top_k = True
    supports_repetition_penalty = True


class SambaNovaCompatInferenceAdapter(_CompatAdapter[SambaNovaCompatConfig]):
    """`remote::sambanova-openai-compat`."""

    provider_type = "remote::sambanova-openai-compat"
    provider_data_key = "sambanova_api_key"
