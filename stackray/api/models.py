"""The Models API: the registry of models the stack serves, and its OpenAI listing."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field

from stackray.api.common import ApiModel, JsonValue, OpenAIApiModel, ResourceId
from stackray.api.datatypes import Api, ResourceType
from stackray.api.routes import Route


class ModelType(str, Enum):
    """What a model does: generate text, or embed it."""

    llm = "llm"
    embedding = "embedding"


class Model(ApiModel):
    """A registered model.

    `identifier` is the name clients use; `provider_resource_id` is the provider's own
    name for it. Embedding models carry `embedding_dimension` in `metadata`.
    """

    identifier: str
    provider_resource_id: str | None = None
    provider_id: str
    type: Literal[ResourceType.model] = ResourceType.model
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    model_type: ModelType = ModelType.llm


class RegisterModelRequest(ApiModel):
    """The body of `POST /v1/models`."""

    model_id: ResourceId
    provider_model_id: str | None = None
    provider_id: str | None = None
    metadata: dict[str, JsonValue] | None = None
    model_type: ModelType | None = None


class ListModelsResponse(ApiModel):
    """The body of `GET /v1/models`."""

    data: list[Model]


class OpenAIModel(OpenAIApiModel):
    """A model as the OpenAI API lists it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class OpenAIListModelsResponse(OpenAIApiModel):
    """The body of `GET /v1/openai/v1/models`.

    `object` is an addition to the contract: OpenAI list pages carry it.
    """

    object: Literal["list"] = "list"
    data: list[OpenAIModel]


ROUTES = (
    # Both SDKs read /v1/models: Llama Stack's fields plus OpenAI's (id, object, created, owned_by).
    Route(
        "GET",
        "/v1/models",
        Api.models,
        "list_models",
        returns=ListModelsResponse,
        handler="model_list",
    ),
    Route(
        "POST", "/v1/models", Api.models, "register_model", body=RegisterModelRequest, returns=Model
    ),
    Route(
        "GET", "/v1/models/{model_id:path}", Api.models, "get_model", returns=Model, handler="model"
    ),
    Route("DELETE", "/v1/models/{model_id:path}", Api.models, "unregister_model", empty=True),
    Route(
        "GET",
        "/v1/openai/v1/models",
        Api.models,
        "openai_list_models",
        returns=OpenAIListModelsResponse,
    ),
)
