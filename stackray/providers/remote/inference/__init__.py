"""Remote inference providers: thin adapters to inference services outside stackray.

Each adapter is a small subclass of `OpenAICompatibleInferenceAdapter` (`openai_compat`),
which passes the OpenAI routes through to a service with OpenAI's API and carries the
Llama Stack routes over them (`translate`). `RemoteClient` (`client`) does the HTTP:
credentials, timeouts, retries and error mapping.
"""
