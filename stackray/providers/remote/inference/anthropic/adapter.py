"""`remote::anthropic`: Anthropic's Messages API (`/v1/messages`, streamed or not, with
tool use), reached with `x-api-key` and `anthropic-version`. Chat (Llama Stack and OpenAI
routes) is translated there (`convert`); Anthropic has no text completions and no
embeddings, so those are refused, naming the model."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from pydantic import SecretStr

from stackray.api.errors import BadRequestError
from stackray.providers.remote.inference.anthropic import convert
from stackray.providers.remote.inference.anthropic.config import AnthropicConfig
from stackray.providers.remote.inference.client import RemoteClient, Transport
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.runtime import telemetry

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicClient(RemoteClient):
    """`RemoteClient` with Anthropic's headers instead of a bearer token."""

    def _headers(self) -> dict[str, str]:
        headers = telemetry.trace_headers()
        key = self.api_key()
        if key:
            headers["x-api-key"] = key
        headers["anthropic-version"] = ANTHROPIC_VERSION
        return headers


class AnthropicTransport:
    """Carries the adapter's OpenAI-shaped calls to the Messages API."""

    def __init__(self, client: AnthropicClient, default_max_tokens: int) -> None:
        self.http = client
        self.base_url = client.base_url
        self.default_max_tokens = default_max_tokens

    def _refuse(self, path: str, body: Any) -> BadRequestError:
        model = body.get("model") if isinstance(body, dict) else None
        what = "embeddings" if path == "embeddings" else "text completions"
        return BadRequestError(
            f"remote::anthropic serves no {what} ({model!r}); use chat completions"
            + (" and an embedding provider" if path == "embeddings" else ""),
            field="model",
        )

    async def request_json(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> Any:
        if method == "GET" and path == "models":
            data = await self.http.request_json("GET", "v1/models", missing_ok=missing_ok)
            if data is None:
                return None
            return {"object": "list", "data": [{"id": m["id"]} for m in data.get("data") or []]}
        if path == "chat/completions":
            request = convert.messages_request(body, self.default_max_tokens)
            return convert.chat_answer(await self.http.request_json("POST", "v1/messages", request))
        raise self._refuse(path, body)

    async def stream_sse(self, path: str, body: Any) -> AsyncGenerator[Any, None]:
        if path != "chat/completions":
            raise self._refuse(path, body)
        request = {**convert.messages_request(body, self.default_max_tokens), "stream": True}
        events = await self.http.stream_sse("v1/messages", request)
        return self._chunks(events)

    async def _chunks(self, events: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        converter = convert.StreamConverter()
        async with aclosing(events):
            async for event in events:
                for chunk in converter.feed(event):
                    yield chunk

    async def aclose(self) -> None:
        await self.http.aclose()


class AnthropicInferenceAdapter(OpenAICompatibleInferenceAdapter[AnthropicConfig]):
    """`remote::anthropic`; see the module docstring."""

    provider_type = "remote::anthropic"
    provider_data_key = "anthropic_api_key"
    supports_top_k = True
    stream_usage = False

    def make_client(self) -> Transport:
        config = self.config
        client = AnthropicClient(
            self.provider_id,
            config.url,
            api_key=config.api_key,
            provider_data_key=self.provider_data_key,
            requires_api_key=True,
            timeout_s=config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            max_connections=config.max_connections,
        )
        return AnthropicTransport(client, config.default_max_tokens)

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_key

    def serves(self, model_id: str, served: set[str]) -> bool:
        return convert.model_name(model_id) in served
