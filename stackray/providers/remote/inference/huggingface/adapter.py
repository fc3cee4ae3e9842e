"""The Hugging Face adapters: `remote::tgi` at a model's URL on Hugging Face.

`remote::hf::serverless` calls the Inference API's URL of the model (TGI's protocol at its
root: `POST /` with `stream` in the body). `remote::hf::endpoint` asks the Inference
Endpoints API for the endpoint's URL when the provider starts (as Llama Stack does), and
refuses to start while the endpoint is not running.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from stackray.api.errors import ServiceUnavailableError
from stackray.providers.remote.inference.client import RemoteClient
from stackray.providers.remote.inference.huggingface.config import (
    InferenceAPIImplConfig,
    InferenceEndpointImplConfig,
)
from stackray.providers.remote.inference.tgi.adapter import TGIInferenceAdapter

UNRESOLVED = "http://unresolved.invalid"
"""The root of an endpoint adapter before `initialize` asked where the endpoint is."""


class InferenceAPIAdapter(TGIInferenceAdapter):
    """`remote::hf::serverless`."""

    provider_type = "remote::hf::serverless"
    generate_path = ""
    stream_path = ""
    config: InferenceAPIImplConfig

    def root_url(self) -> str:
        return self.config.root_url()

    def api_key(self) -> SecretStr | None:
        return self.config.api_token


class InferenceEndpointAdapter(TGIInferenceAdapter):
    """`remote::hf::endpoint`."""

    provider_type = "remote::hf::endpoint"
    generate_path = ""
    stream_path = ""
    config: InferenceEndpointImplConfig

    def __init__(
        self, config: InferenceEndpointImplConfig, deps: dict[Any, Any], context: Any
    ) -> None:
        self._root = UNRESOLVED
        super().__init__(config, deps, context)

    def root_url(self) -> str:
        return self._root

    def api_key(self) -> SecretStr | None:
        return self.config.api_token

    def _api(self, base: str) -> RemoteClient:
        return self.native_client(base)

    async def initialize(self) -> None:
        """Ask the Inference Endpoints API where the endpoint is, and point at it."""
        config = self.config
        namespace, _, name = config.endpoint_name.rpartition("/")
        if not namespace:
            hub = self._api(config.hub_url)
            try:
                namespace = str((await hub.request_json("GET", "api/whoami-v2"))["name"])
            finally:
                await hub.aclose()
        api = self._api(config.endpoints_api_url)
        try:
            info = await api.request_json("GET", f"endpoint/{namespace}/{name}")
        finally:
            await api.aclose()
        status = info.get("status") or {}
        if status.get("state") != "running" or not status.get("url"):
            raise ServiceUnavailableError(
                f"provider '{self.provider_id}': Inference Endpoint {namespace}/{name} is "
                f"{status.get('state') or 'not running'}; start it and restart the stack"
            )
        await self.close()
        self._root = str(status["url"])
        self.client = self.make_client()
        self.native = self.native_client(self._root)
