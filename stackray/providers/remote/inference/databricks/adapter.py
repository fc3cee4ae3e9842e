from __future__ import annotations

from pydantic import SecretStr

from stackray.providers.remote.inference.databricks.config import DatabricksImplConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter


class DatabricksInferenceAdapter(OpenAICompatibleInferenceAdapter[DatabricksImplConfig]):
    """`remote::databricks`: Model Serving's OpenAI-compatible routes at `url`, the
    serving endpoint's name as the model."""

    provider_type = "remote::databricks"

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_token
