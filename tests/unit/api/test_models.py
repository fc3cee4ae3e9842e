"""The API models against the contract: every model has the contract schema's
properties, required set, defaults, enum values and JSON types (deviations are listed,
each with its reason); requests are validated as the contract says.

The round trips with the real clients are in `test_client_compat.py`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from stackray.api import (
    common,
    datasetio,
    files,
    inference,
    inspect,
    models,
    safety,
    scoring,
)
from stackray.api import (
    eval as eval_api,
)
from stackray.api.common import ImageContentItem
from stackray.api.inference import (
    ChatCompletionRequest,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAIChoiceDelta,
    OpenAIChunkChoice,
)
from tests import contract

# ---------------------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------------------

# Our class -> the contract schema it follows. "Schema.prop" names an object the
# contract writes inline as a property of another schema.
CONTRACT_NAMES: dict[type[BaseModel], str] = {
    common.URL: "URL",
    common.URLOrData: "ImageContentItem.image",
    common.TextContentItem: "TextContentItem",
    common.ImageContentItem: "ImageContentItem",
    common.ToolCall: "ToolCall",
    common.ToolParamDefinition: "ToolParamDefinition",
    common.ToolDefinition: "ToolDefinition",
    common.ToolConfig: "ToolConfig",
    common.UserMessage: "UserMessage",
    common.SystemMessage: "SystemMessage",
    common.ToolResponseMessage: "ToolResponseMessage",
    common.CompletionMessage: "CompletionMessage",
    common.GreedySamplingStrategy: "GreedySamplingStrategy",
    common.TopPSamplingStrategy: "TopPSamplingStrategy",
    common.TopKSamplingStrategy: "TopKSamplingStrategy",
    common.SamplingParams: "SamplingParams",
    common.JsonSchemaResponseFormat: "JsonSchemaResponseFormat",
    common.GrammarResponseFormat: "GrammarResponseFormat",
    common.LogProbConfig: "ChatCompletionRequest.logprobs",
    common.TokenLogProbs: "TokenLogProbs",
    common.MetricInResponse: "MetricInResponse",
    inference.ChatCompletionRequest: "ChatCompletionRequest",
    inference.ChatCompletionResponse: "ChatCompletionResponse",
    inference.TextDelta: "TextDelta",
    inference.ImageDelta: "ImageDelta",
    inference.ToolCallDelta: "ToolCallDelta",
    inference.ChatCompletionResponseEvent: "ChatCompletionResponseEvent",
    inference.ChatCompletionResponseStreamChunk: "ChatCompletionResponseStreamChunk",
    inference.CompletionRequest: "CompletionRequest",
    inference.CompletionResponse: "CompletionResponse",
    inference.CompletionResponseStreamChunk: "CompletionResponseStreamChunk",
    inference.EmbeddingsRequest: "EmbeddingsRequest",
    inference.EmbeddingsResponse: "EmbeddingsResponse",
    inference.BatchChatCompletionRequest: "BatchChatCompletionRequest",
    inference.BatchChatCompletionResponse: "BatchChatCompletionResponse",
    inference.BatchCompletionRequest: "BatchCompletionRequest",
    inference.BatchCompletionResponse: "BatchCompletionResponse",
    inference.OpenAIChatCompletionContentPartTextParam: "OpenAIChatCompletionContentPartTextParam",
    inference.OpenAIImageURL: "OpenAIImageURL",
    inference.OpenAIChatCompletionContentPartImageParam: "OpenAIChatCompletionContentPartImageParam",
    inference.OpenAIChatCompletionToolCallFunction: "OpenAIChatCompletionToolCallFunction",
    inference.OpenAIChatCompletionToolCall: "OpenAIChatCompletionToolCall",
    inference.OpenAIUserMessageParam: "OpenAIUserMessageParam",
    inference.OpenAISystemMessageParam: "OpenAISystemMessageParam",
    inference.OpenAIAssistantMessageParam: "OpenAIAssistantMessageParam",
    inference.OpenAIToolMessageParam: "OpenAIToolMessageParam",
    inference.OpenAIDeveloperMessageParam: "OpenAIDeveloperMessageParam",
    inference.OpenAIJSONSchema: "OpenAIJSONSchema",
    inference.OpenAIResponseFormatText: "OpenAIResponseFormatText",
    inference.OpenAIResponseFormatJSONSchema: "OpenAIResponseFormatJSONSchema",
    inference.OpenAIResponseFormatJSONObject: "OpenAIResponseFormatJSONObject",
    inference.OpenAIChatCompletionRequest: "OpenaiChatCompletionRequest",
    inference.OpenAITopLogProb: "OpenAITopLogProb",
    inference.OpenAITokenLogProb: "OpenAITokenLogProb",
    inference.OpenAIChoiceLogprobs: "OpenAIChoiceLogprobs",
    inference.OpenAIChoice: "OpenAIChoice",
    inference.OpenAIChatCompletion: "OpenAIChatCompletion",
    inference.OpenAIChoiceDelta: "OpenAIChoiceDelta",
    inference.OpenAIChunkChoice: "OpenAIChunkChoice",
    inference.OpenAIChatCompletionChunk: "OpenAIChatCompletionChunk",
    inference.OpenAICompletionWithInputMessages: "OpenAICompletionWithInputMessages",
    inference.ListOpenAIChatCompletionResponse: "ListOpenAIChatCompletionResponse",
    inference.OpenAICompletionRequest: "OpenaiCompletionRequest",
    inference.OpenAICompletionChoice: "OpenAICompletionChoice",
    inference.OpenAICompletion: "OpenAICompletion",
    inference.OpenAIEmbeddingsRequest: "OpenaiEmbeddingsRequest",
    inference.OpenAIEmbeddingData: "OpenAIEmbeddingData",
    inference.OpenAIEmbeddingUsage: "OpenAIEmbeddingUsage",
    inference.OpenAIEmbeddingsResponse: "OpenAIEmbeddingsResponse",
    safety.Shield: "Shield",
    safety.RegisterShieldRequest: "RegisterShieldRequest",
    safety.ListShieldsResponse: "ListShieldsResponse",
    safety.SafetyViolation: "SafetyViolation",
    safety.RunShieldRequest: "RunShieldRequest",
    safety.RunShieldResponse: "RunShieldResponse",
    models.Model: "Model",
    models.RegisterModelRequest: "RegisterModelRequest",
    models.ListModelsResponse: "ListModelsResponse",
    models.OpenAIModel: "OpenAIModel",
    models.OpenAIListModelsResponse: "OpenAIListModelsResponse",
    inspect.HealthInfo: "HealthInfo",
    inspect.VersionInfo: "VersionInfo",
    inspect.RouteInfo: "RouteInfo",
    inspect.ListRoutesResponse: "ListRoutesResponse",
    inspect.ProviderInfo: "ProviderInfo",
    inspect.ListProvidersResponse: "ListProvidersResponse",
    files.OpenAIFileObject: "OpenAIFileObject",
    files.ListOpenAIFileResponse: "ListOpenAIFileResponse",
    files.OpenAIFileDeleteResponse: "OpenAIFileDeleteResponse",
    datasetio.URIDataSource: "URIDataSource",
    datasetio.RowsDataSource: "RowsDataSource",
    datasetio.Dataset: "Dataset",
    datasetio.RegisterDatasetRequest: "RegisterDatasetRequest",
    datasetio.ListDatasetsResponse: "ListDatasetsResponse",
    datasetio.AppendRowsRequest: "AppendRowsRequest",
    datasetio.PaginatedResponse: "PaginatedResponse",
    scoring.StringType: "StringType",
    scoring.NumberType: "NumberType",
    scoring.BooleanType: "BooleanType",
    scoring.ArrayType: "ArrayType",
    scoring.ObjectType: "ObjectType",
    scoring.JsonType: "JsonType",
    scoring.UnionType: "UnionType",
    scoring.ChatCompletionInputType: "ChatCompletionInputType",
    scoring.CompletionInputType: "CompletionInputType",
    scoring.AgentTurnInputType: "AgentTurnInputType",
    scoring.LLMAsJudgeScoringFnParams: "LLMAsJudgeScoringFnParams",
    scoring.RegexParserScoringFnParams: "RegexParserScoringFnParams",
    scoring.BasicScoringFnParams: "BasicScoringFnParams",
    scoring.ScoringFn: "ScoringFn",
    scoring.RegisterScoringFunctionRequest: "RegisterScoringFunctionRequest",
    scoring.ListScoringFunctionsResponse: "ListScoringFunctionsResponse",
    scoring.ScoringResult: "ScoringResult",
    scoring.ScoreRequest: "ScoreRequest",
    scoring.ScoreResponse: "ScoreResponse",
    scoring.ScoreBatchRequest: "ScoreBatchRequest",
    scoring.ScoreBatchResponse: "ScoreBatchResponse",
    eval_api.Benchmark: "Benchmark",
    eval_api.RegisterBenchmarkRequest: "RegisterBenchmarkRequest",
    eval_api.ListBenchmarksResponse: "ListBenchmarksResponse",
    eval_api.ModelCandidate: "ModelCandidate",
    eval_api.AgentCandidate: "AgentCandidate",
    eval_api.BenchmarkConfig: "BenchmarkConfig",
    eval_api.RunEvalRequest: "RunEvalRequest",
    eval_api.EvaluateRowsRequest: "EvaluateRowsRequest",
    eval_api.EvaluateResponse: "EvaluateResponse",
    eval_api.Job: "Job",
}

# Type aliases (unions) -> the contract schema they follow.
UNION_NAMES: list[tuple[Any, str]] = [
    (common.InterleavedContentItem, "InterleavedContentItem"),
    (common.InterleavedContent, "InterleavedContent"),
    (common.Message, "Message"),
    (common.SamplingStrategy, "SamplingStrategy"),
    (common.ResponseFormat, "ResponseFormat"),
    (inference.ContentDelta, "ContentDelta"),
    (inference.OpenAIMessageParam, "OpenAIMessageParam"),
    (inference.OpenAIChatCompletionContentPartParam, "OpenAIChatCompletionContentPartParam"),
    (inference.OpenAIResponseFormatParam, "OpenAIResponseFormatParam"),
    (datasetio.DataSource, "DataSource"),
    (scoring.ParamType, "ParamType"),
    (scoring.ScoringFnParams, "ScoringFnParams"),
    (eval_api.EvalCandidate, "EvalCandidate"),
]

# Enums -> the contract's enum (a schema, or "Schema.prop" for an inline one).
ENUM_NAMES: list[tuple[type, str]] = [
    (common.BuiltinTool, "ToolDefinition.tool_name"),
    (common.ToolChoice, "ChatCompletionRequest.tool_choice"),
    (common.ToolPromptFormat, "ToolConfig.tool_prompt_format"),
    (common.SystemMessageBehavior, "ToolConfig.system_message_behavior"),
    (common.StopReason, "CompletionMessage.stop_reason"),
    (common.ResponseFormatType, "JsonSchemaResponseFormat.type"),
    (inference.ChatCompletionResponseEventType, "ChatCompletionResponseEvent.event_type"),
    (inference.ToolCallParseStatus, "ToolCallDelta.parse_status"),
    (inference.TextTruncation, "EmbeddingsRequest.text_truncation"),
    (inference.EmbeddingTaskType, "EmbeddingsRequest.task_type"),
    (models.ModelType, "ModelType"),
    (safety.ViolationLevel, "ViolationLevel"),
    (inspect.HealthStatus, "HealthInfo.status"),
    (files.OpenAIFilePurpose, "OpenAIFilePurpose"),
    (files.Order, "Order"),
    (datasetio.DatasetPurpose, "Dataset.purpose"),
    (scoring.AggregationFunctionType, "AggregationFunctionType"),
    (scoring.ScoringFnParamsType, "ScoringFnParamsType"),
    (eval_api.JobStatus, "Job.status"),
]

# Fields we add to a contract schema, and why.
ADDED_FIELDS: dict[type[BaseModel], set[str]] = {
    # OpenAI clients read token usage; the contract's OpenAI responses lack it.
    inference.OpenAIChatCompletion: {"usage"},
    inference.OpenAIChatCompletionChunk: {"usage"},
    inference.OpenAICompletionWithInputMessages: {"usage"},
    inference.OpenAICompletion: {"usage"},
    # OpenAI list pages carry `object: "list"`.
    models.OpenAIListModelsResponse: {"object"},
}

# (class, field) -> why its JSON types differ from the contract's.
TYPE_DEVIATIONS: dict[tuple[type[BaseModel], str], str] = {
    (inference.OpenAIChunkChoice, "finish_reason"): "null until the last chunk, as OpenAI",
    (
        inference.OpenAICompletionChoice,
        "finish_reason",
    ): "null on the chunks of a stream before the last, as OpenAI",
    (inference.OpenAICompletionRequest, "logprobs"): "OpenAI sends a count, the contract a bool",
}


def _contract_object(spec: str) -> dict[str, Any]:
    name, *path = spec.split(".")
    node = contract.resolve(name)
    for prop in path:
        node = node["properties"][prop]
    return node


def _our_schema(cls: Any) -> dict[str, Any]:
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return cls.model_json_schema()
    return TypeAdapter(cls).json_schema()


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    return defs[ref.rsplit("/", 1)[-1]]


def json_types(node: dict[str, Any], defs: dict[str, Any] | None = None) -> frozenset[str]:
    """What a schema admits, shallowly: JSON types, `=value` for enum/const values,
    `array<...>` with the item types; objects are just "object" (nested models are
    checked on their own), and a schema that admits anything is "any"."""
    node = _deref(node, defs or {})
    out: set[str] = set()
    for key in ("oneOf", "anyOf"):
        for sub in node.get(key, []):
            out |= json_types(sub, defs)
    if "const" in node:
        return frozenset({f"={node['const']}"})
    if "enum" in node:
        return frozenset(f"={v}" for v in node["enum"])
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        out.add(f"array<{','.join(sorted(json_types(items, defs)))}>" if items else "array")
    elif kind is not None:
        out.add(kind)
    if not out:
        out.add("any")
    return frozenset(out)


def _nullable(prop: dict[str, Any], defs: dict[str, Any]) -> bool:
    return "null" in json_types(prop, defs) or "any" in json_types(prop, defs)


@pytest.mark.parametrize("cls", list(CONTRACT_NAMES), ids=lambda c: c.__name__)
def test_fields_follow_contract(cls: type[BaseModel]) -> None:
    spec = CONTRACT_NAMES[cls]
    theirs = _contract_object(spec)
    ours = _our_schema(cls)
    defs = ours.get("$defs", {})
    their_props = theirs.get("properties", {})
    our_props = ours.get("properties", {})
    added = ADDED_FIELDS.get(cls, set())

    assert set(our_props) - added == set(their_props), f"{cls.__name__} vs {spec}: field names"

    # The contract requires exactly the properties that can never be null (see common).
    our_required = set(ours.get("required", [])) | {
        name for name, prop in our_props.items() if not _nullable(prop, defs)
    }
    assert our_required - added == set(theirs.get("required", [])), f"{cls.__name__}: required"

    for name, their_prop in their_props.items():
        our_prop = _deref(our_props[name], defs)
        if "default" in their_prop:
            assert (
                our_props[name].get("default", our_prop.get("default")) == their_prop["default"]
            ), f"{cls.__name__}.{name}: default"
        their_types = json_types(their_prop)
        our_types = json_types(our_props[name], defs)
        if "any" in our_types:
            continue
        if "null" not in their_types and name not in theirs.get("required", []):
            our_types -= {"null"}  # optional fields are `X | None` here, omitted on the wire
        if (cls, name) in TYPE_DEVIATIONS:
            assert our_types != their_types, f"stale deviation {cls.__name__}.{name}"
            continue
        assert our_types == their_types, f"{cls.__name__}.{name}: types"


@pytest.mark.parametrize("alias,name", UNION_NAMES, ids=[n for _, n in UNION_NAMES])
def test_unions_follow_contract(alias: Any, name: str) -> None:
    theirs = contract.schema(name)
    ours = TypeAdapter(alias).json_schema()
    assert json_types(ours, ours.get("$defs")) == json_types(contract.resolve(name))
    if "discriminator" not in theirs:
        return
    by_class_name = {cls.__name__: spec for cls, spec in CONTRACT_NAMES.items()}
    ours_disc = ours["discriminator"]
    assert ours_disc["propertyName"] == theirs["discriminator"]["propertyName"]
    our_mapping = {
        tag: by_class_name[ref.rsplit("/", 1)[-1]] for tag, ref in ours_disc["mapping"].items()
    }
    their_mapping = {
        tag: contract.ref_name({"$ref": ref})
        for tag, ref in theirs["discriminator"]["mapping"].items()
    }
    assert our_mapping == their_mapping


@pytest.mark.parametrize("enum,spec", ENUM_NAMES, ids=[e.__name__ for e, _ in ENUM_NAMES])
def test_enums_follow_contract(enum: type, spec: str) -> None:
    values = {f"={member.value}" for member in enum}  # type: ignore[attr-defined]
    their_values = {t for t in json_types(_contract_object(spec)) if t.startswith("=")}
    if spec == "JsonSchemaResponseFormat.type":  # written as a const beside the enum
        their_values = {
            f"={v}" for v in contract.properties("JsonSchemaResponseFormat")["type"]["enum"]
        }
    assert values == their_values


def test_contract_helper_lists_every_route() -> None:
    routes = contract.routes()
    assert len(routes) == 107
    chat = contract.route("POST", "/v1/inference/chat-completion")
    assert chat.request_schema_name == "ChatCompletionRequest"
    assert chat.response_schema_name == "ChatCompletionResponse"
    assert chat.streams
    assert contract.route("GET", "/v1/models/{model_id}").parameters["model_id"]["in"] == "path"


# ---------------------------------------------------------------------------------------
# Request validation
# ---------------------------------------------------------------------------------------

USER = {"role": "user", "content": "hi"}


def test_native_requests_reject_misspelt_fields() -> None:
    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest.model_validate(
            {"model_id": "m", "messages": [USER], "sampling_param": {}}
        )
    assert err.value.errors()[0]["loc"] == ("sampling_param",)
    assert err.value.errors()[0]["type"] == "extra_forbidden"

    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest.model_validate(
            {"model_id": "m", "messages": [{"role": "user", "content": "x", "contxt": "y"}]}
        )
    assert err.value.errors()[0]["loc"] == ("messages", 0, "user", "contxt")


def test_discriminated_unions_name_the_tags() -> None:
    with pytest.raises(ValidationError) as err:
        ChatCompletionRequest.model_validate(
            {"model_id": "m", "messages": [{"role": "human", "content": "x"}]}
        )
    message = str(err.value)
    assert "'human'" in message and "'user', 'system', 'tool', 'assistant'" in message

    with pytest.raises(ValidationError) as err:
        common.SamplingParams.model_validate({"strategy": {"type": "top_q"}})
    assert "'greedy', 'top_p', 'top_k'" in str(err.value)


def test_chat_request_folds_deprecated_tool_fields() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "model_id": "m",
            "messages": [USER],
            "tool_choice": "required",
            "tool_prompt_format": "json",
        }
    )
    assert request.tool_config == common.ToolConfig(
        tool_choice="required", tool_prompt_format="json"
    )
    assert request.sampling_params == common.SamplingParams()

    with pytest.raises(ValidationError, match="tool_choice and tool_config.tool_choice must match"):
        ChatCompletionRequest.model_validate(
            {
                "model_id": "m",
                "messages": [USER],
                "tool_choice": "none",
                "tool_config": {"tool_choice": "required"},
            }
        )
    with pytest.raises(ValidationError, match="'lookup' is not one of the tools"):
        ChatCompletionRequest.model_validate(
            {"model_id": "m", "messages": [USER], "tool_config": {"tool_choice": "lookup"}}
        )


def test_sampling_params_defaults() -> None:
    params = common.SamplingParams()
    assert params.strategy == common.GreedySamplingStrategy()
    assert (params.max_tokens, params.repetition_penalty, params.stop) == (0, 1.0, None)
    assert common.TopPSamplingStrategy().top_p == 0.95


def test_image_needs_a_source() -> None:
    with pytest.raises(ValidationError, match="either 'url' or 'data'"):
        ImageContentItem.model_validate({"type": "image", "image": {}})


def test_openai_requests_keep_unknown_fields() -> None:
    request = OpenAIChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "assistant", "content": None, "refusal": None}],
            "store": True,
            "reasoning_effort": "low",
        }
    )
    assert request.model_extra == {"store": True, "reasoning_effort": "low"}
    assert request.messages[0].model_extra == {"refusal": None}


def test_required_nullable_fields_survive_exclude_none() -> None:
    chunk = OpenAIChatCompletionChunk(
        id="c",
        created=1,
        model="m",
        choices=[
            OpenAIChunkChoice(delta=OpenAIChoiceDelta(content="x"), finish_reason=None, index=0)
        ],
    )
    body = json.loads(chunk.model_dump_json(exclude_none=True))
    assert body["choices"][0] == {"delta": {"content": "x"}, "finish_reason": None, "index": 0}
    assert "usage" not in body
    assert chunk.model_dump(exclude_none=True, exclude={"choices": {0: {"finish_reason"}}})[
        "choices"
    ][0] == {"delta": {"content": "x"}, "index": 0}


def test_conversion_helpers() -> None:
    content = [
        common.TextContentItem(text="look:"),
        common.ImageContentItem(image=common.URLOrData(data="aGk=")),
    ]
    assert common.interleaved_content_as_str(content) == "look: <image>"
    assert common.interleaved_content_as_str("plain") == "plain"
    assert [inference.openai_finish_reason(r) for r in common.StopReason] == [
        "stop",
        "tool_calls",
        "length",
    ]


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("stackray.api.models:RegisterModelRequest", "model_id"),
        ("stackray.api.safety:RegisterShieldRequest", "shield_id"),
        ("stackray.api.vector_io:RegisterVectorDbRequest", "vector_db_id"),
        ("stackray.api.tools:RegisterToolGroupRequest", "toolgroup_id"),
    ],
)
def test_a_registered_resource_has_a_valid_id(model, field):
    import importlib

    module, name = model.split(":")
    cls = getattr(importlib.import_module(module), name)
    base = {"embedding_model": "m", "provider_id": "p"}
    rest = {k: v for k, v in base.items() if k in cls.model_fields}
    for bad in ("", "a\nb", "x" * 1025):
        with pytest.raises(ValidationError) as info:
            cls.model_validate({**rest, field: bad})
        assert [e["loc"] for e in info.value.errors()] == [(field,)]
    assert getattr(cls.model_validate({**rest, field: "group::a/b"}), field) == "group::a/b"


def test_an_event_lives_at_most_ten_years():
    from stackray.api.telemetry import LogEventRequest

    event = {
        "type": "unstructured_log",
        "trace_id": "t",
        "span_id": "s",
        "timestamp": "2026-01-01T00:00:00Z",
        "message": "m",
        "severity": "info",
    }
    assert LogEventRequest(event=event, ttl_seconds=86400).ttl_seconds == 86400
    with pytest.raises(ValidationError) as info:
        LogEventRequest(event=event, ttl_seconds=199100875003194)
    assert info.value.errors()[0]["loc"] == ("ttl_seconds",)


def test_a_response_request_takes_the_include_it_honours():
    from stackray.api.responses import CreateOpenaiResponseRequest

    ok = CreateOpenaiResponseRequest(model="m", input="x", include=["file_search_call.results"])
    assert ok.include == ["file_search_call.results"]
    with pytest.raises(ValidationError) as info:
        CreateOpenaiResponseRequest(model="m", input="x", include=["reasoning.encrypted_content"])
    assert info.value.errors()[0]["loc"] == ("include", 0)
