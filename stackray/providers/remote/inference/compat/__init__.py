"""The `-openai-compat` inference providers of Llama Stack 0.2.12 (`remote::llama-openai-compat`,
`remote::cerebras-openai-compat`, ...): a service's OpenAI-compatible API at
`openai_compat_api_base`, with its key."""
