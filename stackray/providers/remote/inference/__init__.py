"""Remote inference providers: thin adapters to inference services outside stackray.

Every adapter but Ollama's speaks OpenAI's API and is a small subclass of
`OpenAICompatibleInferenceAdapter` (`openai_compat`), which passes the OpenAI routes
through and carries the Llama Stack routes over them (`translate`). `RemoteClient`
(`client`) does the HTTP: credentials, timeouts, retries and error mapping.
"""
