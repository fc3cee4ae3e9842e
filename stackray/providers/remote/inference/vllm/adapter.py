from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.providers.remote.inference.vllm.config import VLLMInferenceAdapterConfig


class VLLMInferenceAdapter(OpenAICompatibleInferenceAdapter[VLLMInferenceAdapterConfig]):
    """`remote::vllm`: vLLM's OpenAI-compatible server, at `url` as configured."""

    provider_type = "remote::vllm"
    provider_data_key = "vllm_api_token"
    requires_api_key = False
    supports_top_k = True
    supports_repetition_penalty = True

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_token

    def tls_verify(self) -> bool | str:
        return self.config.tls_verify

    def default_max_tokens(self) -> int | None:
        return self.config.max_tokens
