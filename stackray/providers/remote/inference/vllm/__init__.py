"""`remote::vllm`: a vLLM server (or any server speaking OpenAI's API like it)."""
