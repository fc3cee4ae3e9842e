"""Inference providers."""

from __future__ import annotations

from stackray.api.datatypes import Api
from stackray.providers.spec import MODEL, ProviderSpec

_INLINE = "stackray.providers.inline"
_REMOTE = "stackray.providers.remote"

SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        api=Api.inference,
        provider_type="inline::transformers",
        impl=f"{_INLINE}.inference.transformers.impl:TransformersInferenceProvider",
        config_class=f"{_INLINE}.inference.transformers.config:TransformersInferenceConfig",
        pip_packages=("torch", "transformers", "gguf", "xgrammar"),
        deployment=MODEL,
        description="Hugging Face transformers models (local directories or GGUF files), batched on CPU or GPU.",
    ),
    ProviderSpec(
        api=Api.inference,
        provider_type="inline::meta-reference",
        impl=f"{_INLINE}.inference.meta_reference.impl:MetaReferenceInferenceProvider",
        config_class=f"{_INLINE}.inference.meta_reference.config:MetaReferenceInferenceConfig",
        pip_packages=("torch", "transformers", "gguf", "xgrammar"),
        deployment=MODEL,
        description="Llama Stack 0.2.12's inline::meta-reference config on the transformers engine (model from checkpoint_dir).",
    ),
    ProviderSpec(
        api=Api.inference,
        provider_type="inline::sentence-transformers",
        impl=f"{_INLINE}.inference.sentence_transformers.impl:SentenceTransformersInferenceProvider",
        config_class=f"{_INLINE}.inference.sentence_transformers.config:SentenceTransformersInferenceConfig",
        pip_packages=("sentence-transformers",),
        deployment=MODEL,
        description="Sentence-transformers embedding models, batched.",
    ),
    ProviderSpec(
        api=Api.inference,
        provider_type="remote::bedrock",
        impl=f"{_REMOTE}.inference.bedrock.adapter:BedrockInferenceAdapter",
        config_class=f"{_REMOTE}.inference.bedrock.config:BedrockConfig",
        pip_packages=("boto3",),
        description="Amazon Bedrock: Converse for chat and completion, InvokeModel for embeddings.",
    ),
    ProviderSpec(
        api=Api.inference,
        provider_type="inline::vllm",
        impl=f"{_INLINE}.inference.vllm.impl:VLLMInferenceProvider",
        config_class=f"{_INLINE}.inference.vllm.config:VLLMConfig",
        pip_packages=("vllm",),
        deployment=MODEL,
        serve_options=f"{_INLINE}.inference.vllm.config:deployment_options",
        host_check=f"{_INLINE}.inference.vllm.config:check_host",
        description="vLLM's engine on the model server's GPUs (tensor parallel over a placement group).",
    ),
    # Remote adapters are light HTTP clients: they run in-process in the inference deployment.
    *(
        ProviderSpec(
            api=Api.inference,
            provider_type=f"remote::{name}",
            impl=f"{_REMOTE}.inference.{name}.adapter:{adapter}",
            config_class=f"{_REMOTE}.inference.{name}.config:{config}",
            description=description,
        )
        for name, adapter, config, description in (
            (
                "vllm",
                "VLLMInferenceAdapter",
                "VLLMInferenceAdapterConfig",
                "A vLLM server (or any server with OpenAI's API) at a URL you give.",
            ),
            ("openai", "OpenAIInferenceAdapter", "OpenAIConfig", "OpenAI's API."),
            ("together", "TogetherInferenceAdapter", "TogetherImplConfig", "Together AI."),
            ("fireworks", "FireworksInferenceAdapter", "FireworksImplConfig", "Fireworks AI."),
            ("groq", "GroqInferenceAdapter", "GroqConfig", "GroqCloud."),
            ("cerebras", "CerebrasInferenceAdapter", "CerebrasImplConfig", "Cerebras Inference."),
            ("sambanova", "SambaNovaInferenceAdapter", "SambaNovaImplConfig", "SambaNova Cloud."),
            (
                "ollama",
                "OllamaInferenceAdapter",
                "OllamaImplConfig",
                "An Ollama server, through its own API.",
            ),
            (
                "nvidia",
                "NVIDIAInferenceAdapter",
                "NVIDIAConfig",
                "NVIDIA NIM, hosted or self-hosted.",
            ),
            (
                "tgi",
                "TGIInferenceAdapter",
                "TGIImplConfig",
                "A Hugging Face Text Generation Inference server (Messages API and /generate).",
            ),
            ("watsonx", "WatsonXInferenceAdapter", "WatsonXConfig", "IBM watsonx.ai."),
            (
                "databricks",
                "DatabricksInferenceAdapter",
                "DatabricksImplConfig",
                "Databricks Model Serving (its OpenAI-compatible routes).",
            ),
            (
                "runpod",
                "RunpodInferenceAdapter",
                "RunpodImplConfig",
                "A RunPod serverless endpoint with OpenAI's API.",
            ),
            (
                "gemini",
                "GeminiInferenceAdapter",
                "GeminiConfig",
                "Google's Gemini API (generateContent, with tool use and streaming).",
            ),
            (
                "anthropic",
                "AnthropicInferenceAdapter",
                "AnthropicConfig",
                "Anthropic's Messages API (chat with tool use and streaming).",
            ),
            (
                "passthrough",
                "PassthroughInferenceAdapter",
                "PassthroughImplConfig",
                "Another Llama Stack server's inference (its OpenAI-compatible routes).",
            ),
        )
    ),
    ProviderSpec(
        api=Api.inference,
        provider_type="remote::hf::serverless",
        impl=f"{_REMOTE}.inference.huggingface.adapter:InferenceAPIAdapter",
        config_class=f"{_REMOTE}.inference.huggingface.config:InferenceAPIImplConfig",
        description="A model on Hugging Face's serverless Inference API (TGI's protocol).",
    ),
    ProviderSpec(
        api=Api.inference,
        provider_type="remote::hf::endpoint",
        impl=f"{_REMOTE}.inference.huggingface.adapter:InferenceEndpointAdapter",
        config_class=f"{_REMOTE}.inference.huggingface.config:InferenceEndpointImplConfig",
        description="A Hugging Face Inference Endpoint (TGI's protocol), found by name at start.",
    ),
    # Llama Stack 0.2.12's `-openai-compat` providers: a service's OpenAI-compatible API at
    # `openai_compat_api_base`.
    *(
        ProviderSpec(
            api=Api.inference,
            provider_type=f"remote::{name}-openai-compat",
            impl=f"{_REMOTE}.inference.compat.adapter:{prefix}CompatInferenceAdapter",
            config_class=f"{_REMOTE}.inference.compat.config:{prefix}CompatConfig",
            description=f"The OpenAI-compatible API of {title}.",
        )
        for name, prefix, title in (
            ("llama", "Llama", "Meta's Llama API"),
            ("cerebras", "Cerebras", "Cerebras"),
            ("fireworks", "Fireworks", "Fireworks AI"),
            ("groq", "Groq", "GroqCloud"),
            ("together", "Together", "Together AI"),
            ("sambanova", "SambaNova", "SambaNova Cloud"),
        )
    ),
)
