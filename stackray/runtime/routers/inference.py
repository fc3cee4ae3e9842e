"""InferenceRouter: the one object that resolves a model id to its provider and calls it.

It also owns the models API (register/list/get/unregister; the registry is shared by all
replicas through the metadata store) and the stored OpenAI chat completions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.api.inference import (
    BatchChatCompletionRequest,
    BatchChatCompletionResponse,
    BatchCompletionRequest,
    BatchCompletionResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ListOpenAIChatCompletionResponse,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAICompletion,
    OpenAICompletionRequest,
    OpenAICompletionWithInputMessages,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
)
from stackray.api.models import (
    ListModelsResponse,
    Model,
    ModelType,
    OpenAIListModelsResponse,
    OpenAIModel,
    RegisterModelRequest,
)
from stackray.runtime import telemetry
from stackray.runtime.access_control import Action
from stackray.runtime.owned import OwnedDocuments, readable_page, stamp, without_owner
from stackray.runtime.resolver import build_providers
from stackray.runtime.resources import ResourceRegistry, open_registry
from stackray.runtime.storage import DocumentStore

if TYPE_CHECKING:
    from stackray.runtime.config import StackConfig

MODELS = "models"


class InferenceRouter:
    """Routes inference calls by model id; serves the models API and stored completions."""

    def __init__(
        self,
        providers: dict[str, Any],
        registry: ResourceRegistry,
        completions: DocumentStore | None = None,
    ) -> None:
        self.providers = providers
        self.registry = registry
        self.completions = completions
        # Stored chat completions belong to the caller who made them.
        self._completions_access = OwnedDocuments(registry.policy, "chat_completion")

    async def health(self) -> None:
        """Raises if this router cannot serve (its store is unreachable)."""
        self.registry.store.get("health")

    # ---- models -------------------------------------------------------------------------

    def _provider_for_new_model(self, provider_id: str | None, model_id: str) -> str:
        if provider_id is not None:
            if provider_id not in self.providers:
                raise BadRequestError(
                    f"no inference provider {provider_id!r} (providers: {', '.join(sorted(self.providers)) or 'none'})",
                    field="provider_id",
                )
            return provider_id
        if len(self.providers) == 1:
            return next(iter(self.providers))
        raise BadRequestError(
            f"provider_id is required to register {model_id!r}: this stack has several inference providers "
            f"({', '.join(sorted(self.providers))})",
            field="provider_id",
        )

    async def register_model(self, request: RegisterModelRequest) -> Model:
        provider_id = self._provider_for_new_model(request.provider_id, request.model_id)
        model = Model(
            identifier=request.model_id,
            provider_id=provider_id,
            provider_resource_id=request.provider_model_id or request.model_id,
            model_type=request.model_type or ModelType.llm,
            metadata=request.metadata or {},
        )
        existing = self.registry.get_for_create(Model, MODELS, model.identifier)
        if existing is not None:
            if (existing.provider_id, existing.provider_resource_id, existing.model_type) == (
                model.provider_id,
                model.provider_resource_id,
                model.model_type,
            ):
                return existing
            raise ConflictError(
                f"model {model.identifier!r} is already registered with provider {existing.provider_id!r} "
                f"as {existing.provider_resource_id!r}; unregister it first"
            )
        self.registry.require(Action.create, MODELS, model.identifier)
        registered = await self.providers[provider_id].register_model(model)
        if not self.registry.put_if_absent(MODELS, registered.identifier, registered):
            # Another replica registered it meanwhile: same model is fine, a different one conflicts.
            return await self.register_model(request)
        return registered

    async def unregister_model(self, model_id: str) -> None:
        model = self.get_model(model_id)
        self.registry.require(Action.delete, MODELS, model.identifier)
        provider = self.providers.get(model.provider_id)
        if provider is not None:
            await provider.unregister_model(model.provider_resource_id)
        self.registry.delete(MODELS, model.identifier)

    def list_models(self) -> ListModelsResponse:
        return ListModelsResponse(data=self.registry.list(Model, MODELS))

    def get_model(self, model_id: str) -> Model:
        model = self.registry.get(Model, MODELS, model_id)
        if model is not None:
            return model
        # Also accept the provider's own name for a model (e.g. the full hub id).
        for candidate in self.registry.list(Model, MODELS):
            if candidate.provider_resource_id == model_id or model_id in candidate.metadata.get(
                "aliases", []
            ):
                return candidate
        raise NotFoundError(
            f"model {model_id!r} not found; GET /v1/models lists the registered models",
            field="model",
        )

    def openai_list_models(self) -> OpenAIListModelsResponse:
        return OpenAIListModelsResponse(
            data=[
                OpenAIModel(
                    id=m.identifier,
                    created=int(m.metadata.get("created", 0)),
                    owned_by=m.provider_id,
                )
                for m in self.registry.list(Model, MODELS)
            ]
        )

    def _route(self, model_id: str, want: ModelType, field: str) -> tuple[Model, Any]:
        try:
            model = self.get_model(model_id)
        except NotFoundError as e:
            raise NotFoundError(e.message, field=field) from None
        if model.model_type != want:
            raise BadRequestError(
                f"model {model.identifier!r} is an {model.model_type.value} model; this call needs an {want.value} model",
                field=field,
            )
        provider = self.providers.get(model.provider_id)
        if provider is None:
            raise BadRequestError(
                f"model {model.identifier!r} belongs to provider {model.provider_id!r}, which this stack does not run",
                field=field,
            )
        telemetry.note_model(model.identifier)
        return model, provider

    # ---- Llama Stack inference ---------------------------------------------------------

    async def chat_completion(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        model, provider = self._route(request.model_id, ModelType.llm, "model_id")
        return await provider.chat_completion(
            request.model_copy(update={"model_id": model.provider_resource_id})
        )

    async def chat_completion_stream(
        self, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
        model, provider = self._route(request.model_id, ModelType.llm, "model_id")
        async for chunk in provider.chat_completion_stream(
            request.model_copy(update={"model_id": model.provider_resource_id})
        ):
            yield chunk

    async def completion(self, request: CompletionRequest) -> CompletionResponse:
        model, provider = self._route(request.model_id, ModelType.llm, "model_id")
        return await provider.completion(
            request.model_copy(update={"model_id": model.provider_resource_id})
        )

    async def completion_stream(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionResponseStreamChunk]:
        model, provider = self._route(request.model_id, ModelType.llm, "model_id")
        async for chunk in provider.completion_stream(
            request.model_copy(update={"model_id": model.provider_resource_id})
        ):
            yield chunk

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        model, provider = self._route(request.model_id, ModelType.embedding, "model_id")
        return await provider.embeddings(
            request.model_copy(update={"model_id": model.provider_resource_id})
        )

    async def batch_chat_completion(
        self, request: BatchChatCompletionRequest
    ) -> BatchChatCompletionResponse:
        # Sent concurrently: the provider batches them (one forward pass per step).
        requests = request.chat_completion_requests()
        results = await asyncio.gather(*(self.chat_completion(r) for r in requests))
        return BatchChatCompletionResponse(batch=list(results))

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        requests = request.completion_requests()
        results = await asyncio.gather(*(self.completion(r) for r in requests))
        return BatchCompletionResponse(batch=list(results))

    # ---- OpenAI-compatible -------------------------------------------------------------

    async def openai_chat_completion(
        self, request: OpenAIChatCompletionRequest
    ) -> OpenAIChatCompletion:
        model, provider = self._route(request.model, ModelType.llm, "model")
        result: OpenAIChatCompletion = await provider.openai_chat_completion(
            request.model_copy(update={"model": model.provider_resource_id})
        )
        result = result.model_copy(update={"model": model.identifier})
        self._store_completion(result, request)
        return result

    async def openai_chat_completion_stream(
        self, request: OpenAIChatCompletionRequest
    ) -> AsyncIterator[OpenAIChatCompletionChunk]:
        model, provider = self._route(request.model, ModelType.llm, "model")
        chunks: list[OpenAIChatCompletionChunk] = []
        async for chunk in provider.openai_chat_completion_stream(
            request.model_copy(update={"model": model.provider_resource_id})
        ):
            chunk = chunk.model_copy(update={"model": model.identifier})
            chunks.append(chunk)
            yield chunk
        if chunks and self.completions is not None:
            self._store_completion(completion_from_chunks(chunks), request)

    async def openai_completion(self, request: OpenAICompletionRequest) -> OpenAICompletion:
        model, provider = self._route(request.model, ModelType.llm, "model")
        result: OpenAICompletion = await provider.openai_completion(
            request.model_copy(update={"model": model.provider_resource_id})
        )
        return result.model_copy(update={"model": model.identifier})

    async def openai_completion_stream(
        self, request: OpenAICompletionRequest
    ) -> AsyncIterator[OpenAICompletion]:
        model, provider = self._route(request.model, ModelType.llm, "model")
        async for chunk in provider.openai_completion_stream(
            request.model_copy(update={"model": model.provider_resource_id})
        ):
            yield chunk.model_copy(update={"model": model.identifier})

    async def openai_embeddings(self, request: OpenAIEmbeddingsRequest) -> OpenAIEmbeddingsResponse:
        model, provider = self._route(request.model, ModelType.embedding, "model")
        result: OpenAIEmbeddingsResponse = await provider.openai_embeddings(
            request.model_copy(update={"model": model.provider_resource_id})
        )
        return result.model_copy(update={"model": model.identifier})

    # ---- stored chat completions -------------------------------------------------------

    def _store_completion(
        self, completion: OpenAIChatCompletion, request: OpenAIChatCompletionRequest
    ) -> None:
        if self.completions is None:
            return
        stored = OpenAICompletionWithInputMessages.model_validate(
            {
                **completion.model_dump(),
                "input_messages": [m.model_dump() for m in request.messages],
            }
        )
        doc = stamp(stored.model_dump(mode="json"))
        self.completions.put(completion.id, doc)

    def list_chat_completions(
        self,
        after: str | None = None,
        limit: int | None = 20,
        model: str | None = None,
        order: str = "desc",
    ) -> ListOpenAIChatCompletionResponse:
        if self.completions is None:
            raise BadRequestError("this stack does not store chat completions")
        if order not in ("asc", "desc"):
            raise BadRequestError(f"order must be 'asc' or 'desc', got {order!r}", field="order")
        if limit is not None and limit < 1:
            raise BadRequestError(f"limit must be at least 1, got {limit}", field="limit")
        access = self._completions_access
        if after is not None and not access.readable(self.completions.get(after), after):
            raise NotFoundError(
                f"chat completion {after!r} (the 'after' cursor) not found", field="after"
            )
        where = {"model": model} if model else {}
        docs, has_more = readable_page(
            self.completions,
            lambda d: access.readable(d, d["id"]),
            where,
            order_by="created",
            desc=order == "desc",
            after=after,
            limit=limit,
        )
        data = [OpenAICompletionWithInputMessages.model_validate(without_owner(d)) for d in docs]
        return ListOpenAIChatCompletionResponse(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else "",
            last_id=data[-1].id if data else "",
        )

    def get_chat_completion(self, completion_id: str) -> OpenAICompletionWithInputMessages:
        doc = self.completions.get(completion_id) if self.completions is not None else None
        doc = self._completions_access.visible(
            doc, completion_id, "chat completion", "completion_id"
        )
        return OpenAICompletionWithInputMessages.model_validate(without_owner(doc))


def completion_from_chunks(chunks: list[OpenAIChatCompletionChunk]) -> OpenAIChatCompletion:
    """The whole completion a stream of chunks amounts to (what gets stored)."""
    content: dict[int, list[str]] = {}
    tool_calls: dict[int, dict[int, dict[str, Any]]] = {}
    finish: dict[int, str] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            i = choice.index
            content.setdefault(i, [])
            if choice.delta.content:
                content[i].append(choice.delta.content)
            for j, call in enumerate(choice.delta.tool_calls or []):
                index = call.index if call.index is not None else j
                slot = tool_calls.setdefault(i, {}).setdefault(
                    index,
                    {"id": call.id, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call.id:
                    slot["id"] = call.id
                if call.function is not None:
                    slot["function"]["name"] += call.function.name or ""
                    slot["function"]["arguments"] += call.function.arguments or ""
            if choice.finish_reason:
                finish[i] = choice.finish_reason
    choices = []
    for i in sorted(content):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(content[i])}
        if tool_calls.get(i):
            message["tool_calls"] = [tool_calls[i][k] for k in sorted(tool_calls[i])]
        choices.append({"index": i, "message": message, "finish_reason": finish.get(i, "stop")})
    first = chunks[0]
    return OpenAIChatCompletion.model_validate(
        {
            "id": first.id,
            "created": first.created,
            "model": first.model,
            "choices": choices,
            "usage": usage.model_dump() if usage is not None else None,
        }
    )


def open_completion_store(stack: StackConfig) -> DocumentStore:
    """The stored OpenAI chat completions (`inference_store`)."""
    return DocumentStore(
        stack.inference_store_config(),
        table="chat_completions",
        indexed={"model": str, "created": int},
    )


async def register_config_models(router: InferenceRouter, stack: StackConfig) -> None:
    """Register the run config's models (idempotent: every process does it at start)."""
    for model in stack.models:
        await router.register_model(
            RegisterModelRequest(
                model_id=model.model_id,
                provider_id=model.provider_id,
                provider_model_id=model.provider_model_id,
                model_type=ModelType(model.model_type),
                metadata=model.metadata or None,
            )
        )


async def build_router(
    stack: StackConfig, deps: dict[Api, Any], servers: dict[str, Any] | None = None
) -> InferenceRouter:
    """The inference router (`ROUTERS[Api.inference]`), a library: the gateway and each
    deployment that calls inference build one over the model servers' clients
    (`servers`) and in-process remote adapters; all of them read the same registry."""
    providers = await build_providers(stack, Api.inference, deps, servers)
    router = InferenceRouter(providers, open_registry(stack), open_completion_store(stack))
    await register_config_models(router, stack)
    return router
