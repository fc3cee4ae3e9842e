from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from stackray.api.errors import ConfigError
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.providers.remote.inference.runpod.config import RunpodImplConfig


class RunpodInferenceAdapter(OpenAICompatibleInferenceAdapter[RunpodImplConfig]):
    """`remote::runpod`: the endpoint's OpenAI-compatible routes at `url`. Llama Stack's
    template leaves `url` empty (`${env.RUNPOD_URL:}`); the provider then refuses to start,
    naming it."""

    provider_type = "remote::runpod"

    def __init__(self, config: RunpodImplConfig, deps: dict[Any, Any], context: Any) -> None:
        if not config.url:
            raise ConfigError(
                f"provider {context.provider_id!r} (remote::runpod): url is not set; give the "
                "endpoint's OpenAI-compatible base URL (e.g. set RUNPOD_URL)"
            )
        super().__init__(config, deps, context)

    def base_url(self) -> str:
        assert self.config.url is not None
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_token
