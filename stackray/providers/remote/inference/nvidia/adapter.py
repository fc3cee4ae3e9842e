from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from stackray.api.inference import EmbeddingsRequest, EmbeddingsResponse
from stackray.providers.remote.inference import translate
from stackray.providers.remote.inference.client import RemoteClient, Transport
from stackray.providers.remote.inference.nvidia.config import NVIDIAConfig
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter

# Llama Stack's embedding task types as NIM's `input_type`, its text_truncation as `truncate`.
_INPUT_TYPES = {"document": "passage", "query": "query"}
_TRUNCATE = {"none": "NONE", "end": "END", "start": "START"}


class NVIDIAInferenceAdapter(OpenAICompatibleInferenceAdapter[NVIDIAConfig]):
    """`remote::nvidia`: a NIM's OpenAI-compatible API at `{url}/v1`. The hosted API
    needs a key (a request without one is refused before it is sent); a self-hosted NIM
    is called with the key if one is configured, else without."""

    provider_type = "remote::nvidia"

    def make_client(self) -> Transport:
        config = self.config
        return RemoteClient(
            self.provider_id,
            self.base_url(),
            api_key=self.api_key(),
            requires_api_key=config.is_hosted(),
            timeout_s=float(config.timeout) if config.timeout is not None else config.timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_retries=config.max_retries,
            retry_backoff_s=config.retry_backoff_s,
            max_connections=config.max_connections,
        )

    def base_url(self) -> str:
        url = self.config.url.rstrip("/")
        return f"{url}/v1" if self.config.append_api_version else url

    def api_key(self) -> SecretStr | None:
        return self.config.api_key

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        # NIM's retrieval embedding models need to know whether a text is a query or a
        # passage, and how to truncate: its `input_type` and `truncate` parameters.
        # (NIM truncates itself, so the request's truncation is passed on, not refused.)
        whole = request.model_copy(update={"text_truncation": None})
        body: dict[str, Any] = translate.embeddings_request_to_openai(whole, self.dialect)
        if request.task_type is not None:
            body["input_type"] = _INPUT_TYPES[_value(request.task_type)]
        if request.text_truncation is not None:
            body["truncate"] = _TRUNCATE[_value(request.text_truncation)]
        data = await self.client.request_json("POST", "embeddings", body)
        return self._translate(translate.embeddings_from_openai, data)


def _value(field: Any) -> str:
    return str(getattr(field, "value", field))
