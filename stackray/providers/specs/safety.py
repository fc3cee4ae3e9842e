"""Safety providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import MODEL, ProviderSpec

_INLINE = "stackray.providers.inline.safety"
_REMOTE = "stackray.providers.remote.safety"

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.safety,
        provider_type="inline::llama-guard",
        impl=f"{_INLINE}.llama_guard.impl:LlamaGuardSafetyProvider",
        config_class=f"{_INLINE}.llama_guard.config:LlamaGuardConfig",
        # The guard model is any registered llm, reached through the Inference API.
        api_dependencies=(Api.inference,),
        description="Llama Guard 3: the 14 hazard categories, judged by a model served by the Inference API.",
    ),
    ProviderSpec(
        api=Api.safety,
        provider_type="inline::prompt-guard",
        impl=f"{_INLINE}.prompt_guard.impl:PromptGuardSafetyProvider",
        config_class=f"{_INLINE}.prompt_guard.config:PromptGuardConfig",
        pip_packages=("torch", "transformers"),
        # Its classifier runs in its own deployment: on a GPU when the cluster has one.
        deployment=MODEL,
        description="Prompt Guard: a sequence classifier flagging jailbreaks and prompt injections.",
    ),
    ProviderSpec(
        api=Api.safety,
        provider_type="inline::code-scanner",
        impl=f"{_INLINE}.code_scanner.impl:CodeScannerSafetyProvider",
        config_class=f"{_INLINE}.code_scanner.config:CodeScannerConfig",
        pip_packages=("codeshield", "semgrep"),
        description="Meta's CodeShield: insecure code patterns (regex and semgrep rules) in messages.",
    ),
    ProviderSpec(
        api=Api.safety,
        provider_type="remote::bedrock",
        impl=f"{_REMOTE}.bedrock.adapter:BedrockSafetyAdapter",
        config_class=f"{_REMOTE}.bedrock.config:BedrockSafetyConfig",
        pip_packages=("boto3",),
        description="AWS Bedrock Guardrails (ApplyGuardrail).",
    ),
    ProviderSpec(
        api=Api.safety,
        provider_type="remote::sambanova",
        impl=f"{_REMOTE}.sambanova.adapter:SambaNovaSafetyAdapter",
        config_class=f"{_REMOTE}.sambanova.config:SambaNovaSafetyConfig",
        description="Llama Guard models hosted by SambaNova Cloud.",
    ),
    ProviderSpec(
        api=Api.safety,
        provider_type="remote::nvidia",
        impl=f"{_REMOTE}.nvidia.adapter:NVIDIASafetyAdapter",
        config_class=f"{_REMOTE}.nvidia.config:NVIDIASafetyConfig",
        description="NVIDIA NeMo Guardrails checks.",
    ),
)
