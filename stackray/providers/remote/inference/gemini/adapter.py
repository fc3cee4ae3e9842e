"""`remote::gemini`: the Gemini API's `generateContent` / `streamGenerateContent`
(`alt=sse`) for chat, with tool use; `batchEmbedContents` for embeddings; the model list
from `GET /models`. The key goes in `x-goog-api-key`. Gemini has no text completions, so
those are refused, naming the model."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from pydantic import SecretStr

from stackray.api.errors import BadRequestError
from stackray.providers.remote.inference.client import RemoteClient, Transport
from stackray.providers.remote.inference.gemini import convert
from stackray.providers.remote.inference.gemini.config import GeminiConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter
from stackray.runtime import telemetry


class GeminiClient(RemoteClient):
    """`RemoteClient` with the key in `x-goog-api-key`."""

    def _headers(self) -> dict[str, str]:
        headers = telemetry.trace_headers()
        key = self.api_key()
        if key:
            headers["x-goog-api-key"] = key
        return headers


class GeminiTransport:
    """Carries the adapter's OpenAI-shaped calls to the Gemini API."""

    def __init__(self, client: GeminiClient) -> None:
        self.http = client
        self.base_url = client.base_url

    async def request_json(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> Any:
        if method == "GET" and path == "models":
            data = await self.http.request_json("GET", "models", missing_ok=missing_ok)
            if data is None:
                return None
            return {
                "object": "list",
                "data": [{"id": convert.model_name(m["name"])} for m in data.get("models") or []],
            }
        if path == "chat/completions":
            model = convert.model_name(str(body["model"]))
            answer = await self.http.request_json(
                "POST", f"models/{model}:generateContent", convert.generate_request(body)
            )
            return convert.chat_answer(answer, model)
        if path == "embeddings":
            return await self._embeddings(body)
        raise BadRequestError(
            f"remote::gemini serves no text completions ({body.get('model')!r}); use chat "
            "completions",
            field="model",
        )

    async def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        model = convert.model_name(str(body["model"]))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if not all(isinstance(t, str) for t in texts):
            raise BadRequestError("remote::gemini embeds texts", field="input")
        request: dict[str, Any] = {
            "requests": [
                {
                    "model": f"models/{model}",
                    "content": {"parts": [{"text": t}]},
                    **(
                        {"outputDimensionality": body["dimensions"]}
                        if body.get("dimensions")
                        else {}
                    ),
                }
                for t in texts
            ]
        }
        data = await self.http.request_json("POST", f"models/{model}:batchEmbedContents", request)
        return {
            "object": "list",
            "model": model,
            "data": [
                {"object": "embedding", "index": i, "embedding": e["values"]}
                for i, e in enumerate(data["embeddings"])
            ],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    async def stream_sse(self, path: str, body: Any) -> AsyncGenerator[Any, None]:
        if path != "chat/completions":
            raise BadRequestError(
                f"remote::gemini serves no text completions ({body.get('model')!r})",
                field="model",
            )
        model = convert.model_name(str(body["model"]))
        events = await self.http.stream_sse(
            f"models/{model}:streamGenerateContent?alt=sse", convert.generate_request(body)
        )
        return self._chunks(events, model)

    async def _chunks(
        self, events: AsyncGenerator[Any, None], model: str
    ) -> AsyncGenerator[Any, None]:
        converter = convert.StreamConverter(model)
        async with aclosing(events):
            async for event in events:
                for chunk in converter.feed(event):
                    yield chunk

    async def aclose(self) -> None:
        await self.http.aclose()


class GeminiInferenceAdapter(OpenAICompatibleInferenceAdapter[GeminiConfig]):
    """`remote::gemini`; see the module docstring."""

    provider_type = "remote::gemini"
    provider_data_key = "gemini_api_key"
    supports_top_k = True
    stream_usage = False

    def make_client(self) -> Transport:
        config = self.config
        client = GeminiClient(
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
        return GeminiTransport(client)

    def base_url(self) -> str:
        return self.config.url

    def api_key(self) -> SecretStr | None:
        return self.config.api_key

    def serves(self, model_id: str, served: set[str]) -> bool:
        return convert.model_name(model_id) in served
