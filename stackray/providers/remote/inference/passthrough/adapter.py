from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.providers.remote.inference.passthrough.config import PassthroughImplConfig


class PassthroughInferenceAdapter(OpenAICompatibleInferenceAdapter[PassthroughImplConfig]):
    """`remote::passthrough`: every inference call goes to another Llama Stack server,
    through the OpenAI-compatible routes it serves under `/v1/openai/v1` (models listed
    there too); Llama Stack calls are translated to them as for any OpenAI-compatible
    service."""

    provider_type = "remote::passthrough"
    provider_data_key = "passthrough_api_key"
    requires_api_key = False

    def base_url(self) -> str:
        return f"{self.config.url.rstrip('/')}/v1/openai/v1"

    def api_key(self) -> SecretStr | None:
        return self.config.api_key
