"""Settings of the `-openai-compat` providers: as in Llama Stack 0.2.12, an `api_key` and the
`openai_compat_api_base` of the service (default its public endpoint), plus the HTTP
settings every remote provider has."""

from __future__ import annotations

from pydantic import Field, SecretStr

from stackray.providers.remote.inference.config import RemoteInferenceConfig


class OpenAICompatServiceConfig(RemoteInferenceConfig):
    """What every `-openai-compat` provider takes (each subclass gives its service's
    default URL)."""

    openai_compat_api_base: str = Field(
        description="Base URL of the service's OpenAI-compatible routes."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="The service's API key; a request may bring its own as provider data "
        "'<service>_api_key' (llama_api_key, cerebras_api_key, ...).",
    )


class LlamaCompatConfig(OpenAICompatServiceConfig):
    """Settings of `remote::llama-openai-compat` (Meta's Llama API)."""

    openai_compat_api_base: str = Field(
        default="https://api.llama.com/compat/v1/",
        description="Base URL of the Llama API's OpenAI-compatible routes.",
    )


class CerebrasCompatConfig(OpenAICompatServiceConfig):
    """Settings of `remote::cerebras-openai-compat`."""

    openai_compat_api_base: str = Field(
        default="https://api.cerebras.ai/v1",
        description="Base URL of Cerebras' OpenAI-compatible routes.",
    )


class FireworksCompatConfig(OpenAICompatServiceConfig):
    """Settings of `remote::fireworks-openai-compat`."""

    openai_compat_api_base: str = Field(
        default="https://api.fireworks.ai/inference/v1",
        description="Base URL of Fireworks AI's OpenAI-compatible routes.",
    )


class GroqCompatConfig(OpenAICompatServiceConfig):
    """Settings of `remote::groq-openai-compat`."""

    openai_compat_api_base: str = Field(
        default="https://api.groq.com/openai/v1",
        description="Base URL of GroqCloud's OpenAI-compatible routes.",
    )


class TogetherCompatConfig(OpenAICompatServiceConfig):
    """Settings of `remote::together-openai-compat`."""

    openai_compat_api_base: str = Field(
        default="https://api.together.xyz/v1",
        description="Base URL of Together AI's OpenAI-compatible routes.",
    )


class SambaNovaCompatConfig(OpenAICompatServiceConfig):
    """Settings of `remote::sambanova-openai-compat`."""

    openai_compat_api_base: str = Field(
        default="https://api.sambanova.ai/v1",
        description="Base URL of SambaNova Cloud's OpenAI-compatible routes.",
    )
