"""Routes of the inference and models APIs (Llama Stack's and OpenAI's)."""

from __future__ import annotations

from fastapi import Query
from fastapi.responses import JSONResponse, Response

from stackray.api.datatypes import Api
from stackray.api.inference import (
    BatchChatCompletionRequest,
    BatchCompletionRequest,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
    OpenAIEmbeddingsRequest,
)
from stackray.api.models import RegisterModelRequest
from stackray.deployments.routes import Routes

INFERENCE = Api.inference.value


def register(routes: Routes) -> None:
    call, stream, json = routes.call, routes.stream, routes.json

    # ---- models ------------------------------------------------------------------------

    async def list_models() -> Response:
        # Both SDKs read this path: Llama Stack's fields plus OpenAI's (id, object, created, owned_by).
        listing = await call(INFERENCE, "list_models")
        data = []
        for m in listing.data:
            item = m.model_dump(mode="json", exclude_none=True)
            item.update(id=m.identifier, object="model", created=0, owned_by=m.provider_id)
            data.append(item)
        return JSONResponse({"object": "list", "data": data})

    async def register_model(body: RegisterModelRequest) -> Response:
        return json(await call(INFERENCE, "register_model", body))

    async def get_model(model_id: str) -> Response:
        model = await call(INFERENCE, "get_model", model_id)
        item = model.model_dump(mode="json", exclude_none=True)
        item.update(id=model.identifier, object="model", created=0, owned_by=model.provider_id)
        return JSONResponse(item)

    async def unregister_model(model_id: str) -> Response:
        await call(INFERENCE, "unregister_model", model_id)
        return json(None)

    async def openai_list_models() -> Response:
        return json(await call(INFERENCE, "openai_list_models"))

    routes.add(Api.models, "GET", "/v1/models", list_models)
    routes.add(Api.models, "POST", "/v1/models", register_model)
    routes.add(Api.models, "GET", "/v1/models/{model_id:path}", get_model)
    routes.add(Api.models, "DELETE", "/v1/models/{model_id:path}", unregister_model)
    routes.add(Api.models, "GET", "/v1/openai/v1/models", openai_list_models)

    # ---- inference ---------------------------------------------------------------------

    async def chat_completion(body: ChatCompletionRequest) -> Response:
        if body.stream:
            return await stream(INFERENCE, "chat_completion_stream", body)
        return json(await call(INFERENCE, "chat_completion", body))

    async def completion(body: CompletionRequest) -> Response:
        if body.stream:
            return await stream(INFERENCE, "completion_stream", body)
        return json(await call(INFERENCE, "completion", body))

    async def embeddings(body: EmbeddingsRequest) -> Response:
        return json(await call(INFERENCE, "embeddings", body))

    async def batch_chat_completion(body: BatchChatCompletionRequest) -> Response:
        return json(await call(INFERENCE, "batch_chat_completion", body))

    async def batch_completion(body: BatchCompletionRequest) -> Response:
        return json(await call(INFERENCE, "batch_completion", body))

    routes.add(Api.inference, "POST", "/v1/inference/chat-completion", chat_completion)
    routes.add(Api.inference, "POST", "/v1/inference/completion", completion)
    routes.add(Api.inference, "POST", "/v1/inference/embeddings", embeddings)
    routes.add(Api.inference, "POST", "/v1/inference/batch-chat-completion", batch_chat_completion)
    routes.add(Api.inference, "POST", "/v1/inference/batch-completion", batch_completion)

    # ---- OpenAI-compatible (under /v1/openai/v1 and /v1) -------------------------------

    async def openai_chat(body: OpenAIChatCompletionRequest) -> Response:
        if body.stream:
            return await stream(INFERENCE, "openai_chat_completion_stream", body, openai=True)
        return json(await call(INFERENCE, "openai_chat_completion", body))

    async def openai_completions(body: OpenAICompletionRequest) -> Response:
        if body.stream:
            return await stream(INFERENCE, "openai_completion_stream", body, openai=True)
        return json(await call(INFERENCE, "openai_completion", body))

    async def openai_embeddings(body: OpenAIEmbeddingsRequest) -> Response:
        return json(await call(INFERENCE, "openai_embeddings", body))

    async def list_chat_completions(
        after: str | None = Query(default=None),
        limit: int | None = Query(default=20),
        model: str | None = Query(default=None),
        order: str = Query(default="desc"),
    ) -> Response:
        return json(await call(INFERENCE, "list_chat_completions", after, limit, model, order))

    async def get_chat_completion(completion_id: str) -> Response:
        return json(await call(INFERENCE, "get_chat_completion", completion_id))

    routes.add(Api.inference, "POST", "/chat/completions", openai_chat, openai=True)
    routes.add(Api.inference, "GET", "/chat/completions", list_chat_completions, openai=True)
    routes.add(
        Api.inference, "GET", "/chat/completions/{completion_id}", get_chat_completion, openai=True
    )
    routes.add(Api.inference, "POST", "/completions", openai_completions, openai=True)
    routes.add(Api.inference, "POST", "/embeddings", openai_embeddings, openai=True)
