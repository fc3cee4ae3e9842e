"""`remote::bedrock`: the inference routes over Bedrock Runtime.

Requests take the same road as with the OpenAI-compatible providers (translated to
OpenAI-shaped bodies); the transport carries them to Converse / InvokeModel through boto3
(`transport`, `convert`).
"""

from __future__ import annotations

from typing import Any

from stackray.api.inference import EmbeddingsRequest, EmbeddingsResponse
from stackray.api.models import Model, ModelType
from stackray.providers.remote.inference import translate
from stackray.providers.remote.inference.bedrock.config import BedrockConfig
from stackray.providers.remote.inference.bedrock.transport import BedrockTransport
from stackray.providers.remote.inference.openai_compat import OpenAICompatibleInferenceAdapter

_INPUT_TYPES = {"query": "search_query", "document": "search_document"}


class BedrockInferenceAdapter(OpenAICompatibleInferenceAdapter[BedrockConfig]):
    """`remote::bedrock`: chat and completion with Converse, embeddings with InvokeModel."""

    provider_type = "remote::bedrock"
    requires_api_key = False

    def make_client(self) -> BedrockTransport:
        return BedrockTransport(self.provider_id, self.config)

    @property
    def bedrock(self) -> BedrockTransport:
        assert isinstance(self.client, BedrockTransport)
        return self.client

    def _models_from_listing(self, data: Any) -> list[Model]:
        return [
            Model(
                identifier=item["id"],
                provider_resource_id=item["id"],
                provider_id=self.provider_id,
                model_type=(
                    ModelType.embedding
                    if "EMBEDDING" in item.get("output_modalities", [])
                    else ModelType.llm
                ),
                metadata={"owned_by": item["owned_by"]},
            )
            for item in data["data"]
        ]

    async def register_model(self, model: Model) -> Model:
        # Inference profiles (us.meta.llama...), provisioned models and ARNs are not in the
        # foundation-model listing: any id is accepted, and Bedrock judges it on use.
        return model

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        body = translate.embeddings_request_to_openai(request, self.dialect)
        task = request.task_type.value if request.task_type is not None else None
        data = await self.bedrock.embeddings(body, _INPUT_TYPES.get(task or ""))
        return self._translate(translate.embeddings_from_openai, data)
