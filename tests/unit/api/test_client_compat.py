"""The API models against the clients that speak the contract.

`llama-stack-client` and `openai` talk to an in-memory transport: what they send must
follow the contract and parse into our request models; what we answer (built from our
response models) must follow the contract's schema and parse with the clients' types.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from llama_stack_client import types as ls_types
from llama_stack_client.types import shared as ls_shared
from llama_stack_client.types.chat import completion_create_response as ls_chat
from pydantic import BaseModel

from stackray.api import common, inspect, models
from stackray.api.common import (
    CompletionMessage,
    ImageContentItem,
    MetricInResponse,
    StopReason,
    TextContentItem,
    TokenLogProbs,
    ToolCall,
)
from stackray.api.inference import (
    BatchChatCompletionRequest,
    BatchChatCompletionResponse,
    BatchCompletionRequest,
    BatchCompletionResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseEvent,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ListOpenAIChatCompletionResponse,
    OpenAIAssistantMessageParam,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequest,
    OpenAIChatCompletionToolCall,
    OpenAIChatCompletionToolCallFunction,
    OpenAIChatCompletionUsage,
    OpenAIChoice,
    OpenAIChoiceDelta,
    OpenAIChoiceLogprobs,
    OpenAIChunkChoice,
    OpenAICompletion,
    OpenAICompletionChoice,
    OpenAICompletionRequest,
    OpenAICompletionWithInputMessages,
    OpenAIEmbeddingData,
    OpenAIEmbeddingsRequest,
    OpenAIEmbeddingsResponse,
    OpenAIEmbeddingUsage,
    OpenAITokenLogProb,
    OpenAITopLogProb,
    OpenAIUserMessageParam,
    TextDelta,
    ToolCallDelta,
)
from stackray.api.inspect import (
    HealthInfo,
    ListProvidersResponse,
    ListRoutesResponse,
    ProviderInfo,
    RouteInfo,
    VersionInfo,
)
from stackray.api.models import (
    ListModelsResponse,
    Model,
    OpenAIListModelsResponse,
    OpenAIModel,
    RegisterModelRequest,
)
from tests import contract

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

BASE_URL = "http://stack.test"
USER = {"role": "user", "content": "hi"}


def wire(model: BaseModel) -> dict[str, Any]:
    """A response body as the server sends it."""
    return model.model_dump(mode="json", exclude_none=True)


def answer(schema: str, model: BaseModel, *, added: Iterable[str] = ()) -> dict[str, Any]:
    """The wire form of `model`, checked against contract schema `schema` (fields we
    add to the contract, named in `added`, are left out of the check)."""
    body = wire(model)
    contract.validate(schema, {k: v for k, v in body.items() if k not in set(added)})
    return body


def sse(events: Iterable[dict[str, Any]]) -> httpx.Response:
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


class Server:
    """An in-memory server: records each request and answers with `respond(request)`."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response | dict[str, Any]]):
        self.requests: list[httpx.Request] = []
        self._respond = respond

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self._respond(request)
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, json=reply)

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)

    def llama_stack(self) -> LlamaStackClient:
        http = httpx.Client(transport=httpx.MockTransport(self))
        return LlamaStackClient(base_url=BASE_URL, http_client=http, max_retries=0)

    def openai(self) -> openai.OpenAI:
        http = httpx.Client(transport=httpx.MockTransport(self))
        return openai.OpenAI(
            api_key="none", base_url=f"{BASE_URL}/v1/openai/v1", http_client=http, max_retries=0
        )


def parse_request(server: Server, cls: type[BaseModel], schema: str) -> Any:
    """The last request's body, checked against the contract and parsed by our model."""
    body = server.body
    contract.validate(schema, body)
    return cls.model_validate(body)


# --- Llama Stack inference -------------------------------------------------------------

WEATHER_TOOL = {
    "tool_name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "city": {"param_type": "string", "description": "City name", "required": True},
        "unit": {"param_type": "string", "required": False, "default": "celsius"},
    },
}
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
            {"type": "image", "image": {"url": {"uri": "https://example.com/cat.png"}}},
            {"type": "image", "image": {"data": base64.b64encode(b"\x89PNG").decode()}},
        ],
    },
    {
        "role": "assistant",
        "content": "",
        "stop_reason": "end_of_message",
        "tool_calls": [
            {"call_id": "c1", "tool_name": "get_weather", "arguments": {"city": "Paris"}},
            {"call_id": "c2", "tool_name": "brave_search", "arguments": {"query": "cat"}},
        ],
    },
    {"role": "tool", "call_id": "c1", "content": [{"type": "text", "text": "18C, sunny"}]},
    {"role": "tool", "call_id": "c2", "content": "A cat."},
]
STRATEGIES = [
    {"type": "greedy"},
    {"type": "top_p", "temperature": 0.7, "top_p": 0.9},
    {"type": "top_k", "top_k": 40},
]
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer"],
}


def chat_response() -> ChatCompletionResponse:
    return ChatCompletionResponse(
        completion_message=CompletionMessage(
            content='{"answer": "a cat"}',
            stop_reason=StopReason.end_of_turn,
            tool_calls=[
                ToolCall(
                    call_id="c3",
                    tool_name="get_weather",
                    arguments={"city": "Paris", "days": 2, "detailed": True, "tags": ["a", 1]},
                    arguments_json='{"city": "Paris"}',
                )
            ],
        ),
        logprobs=[TokenLogProbs(logprobs_by_token={"{": -0.01, "[": -4.6})],
        metrics=[
            MetricInResponse(metric="prompt_tokens", value=42, unit="tokens"),
            MetricInResponse(metric="completion_tokens", value=7),
            MetricInResponse(metric="tokens_per_second", value=31.5),
        ],
    )


@pytest.mark.parametrize("strategy", STRATEGIES, ids=[s["type"] for s in STRATEGIES])
def test_llama_stack_chat_completion(strategy: dict[str, Any]) -> None:
    server = Server(lambda _: answer("ChatCompletionResponse", chat_response()))
    result = server.llama_stack().inference.chat_completion(
        model_id="smollm2",
        messages=CONVERSATION,
        tools=[WEATHER_TOOL, {"tool_name": "brave_search"}],
        tool_config={
            "tool_choice": "get_weather",
            "tool_prompt_format": "python_list",
            "system_message_behavior": "replace",
        },
        response_format={"type": "json_schema", "json_schema": ANSWER_SCHEMA},
        sampling_params={
            "strategy": strategy,
            "max_tokens": 64,
            "repetition_penalty": 1.1,
            "stop": ["\n\n"],
        },
        logprobs={"top_k": 2},
    )

    assert server.requests[0].url.path == "/v1/inference/chat-completion"
    request = parse_request(server, ChatCompletionRequest, "ChatCompletionRequest")
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool", "tool"]
    user = request.messages[1]
    assert isinstance(user.content[1], ImageContentItem)
    assert user.content[1].image.url.uri == "https://example.com/cat.png"
    assistant = request.messages[2]
    assert assistant.tool_calls[1].tool_name is common.BuiltinTool.brave_search
    assert request.tools[0].parameters["unit"].default == "celsius"
    assert request.tool_config.tool_choice == "get_weather"
    assert request.sampling_params.strategy.type == strategy["type"]
    assert request.sampling_params.max_tokens == 64
    assert isinstance(request.response_format, common.JsonSchemaResponseFormat)
    assert request.logprobs.top_k == 2
    assert request.stream is False

    assert isinstance(result, ls_shared.ChatCompletionResponse)
    assert result.completion_message.tool_calls[0].arguments["days"] == 2
    assert result.metrics[0].value == 42
    ls_shared.ChatCompletionResponse.model_validate(wire(chat_response()))


def chat_stream() -> list[ChatCompletionResponseStreamChunk]:
    def chunk(event_type: str, delta: Any, **kw: Any) -> ChatCompletionResponseStreamChunk:
        return ChatCompletionResponseStreamChunk(
            event=ChatCompletionResponseEvent(event_type=event_type, delta=delta, **kw)
        )

    call = ToolCall(call_id="c9", tool_name="get_weather", arguments={"city": "Oslo"})
    last = chunk("complete", TextDelta(text=""), stop_reason=StopReason.end_of_message)
    last.metrics = [MetricInResponse(metric="completion_tokens", value=12)]
    return [
        chunk("start", TextDelta(text="")),
        chunk(
            "progress",
            TextDelta(text="Let me "),
            logprobs=[TokenLogProbs(logprobs_by_token={"Let": -0.2})],
        ),
        chunk(
            "progress", ToolCallDelta(tool_call='[get_weather(city="Os', parse_status="in_progress")
        ),
        chunk("progress", ToolCallDelta(tool_call=call, parse_status="succeeded")),
        last,
    ]


def test_llama_stack_chat_completion_stream() -> None:
    events = [answer("ChatCompletionResponseStreamChunk", c) for c in chat_stream()]
    server = Server(lambda _: sse(events))
    stream = server.llama_stack().inference.chat_completion(
        model_id="smollm2", messages=[USER], stream=True, tools=[WEATHER_TOOL]
    )
    received = list(stream)

    request = parse_request(server, ChatCompletionRequest, "ChatCompletionRequest")
    assert request.stream is True
    assert [c.event.event_type for c in received] == [
        "start",
        "progress",
        "progress",
        "progress",
        "complete",
    ]
    assert received[2].event.delta.tool_call == '[get_weather(city="Os'
    assert received[3].event.delta.tool_call.arguments == {"city": "Oslo"}
    assert received[4].event.stop_reason == "end_of_message"
    for event in events:
        ls_types.ChatCompletionResponseStreamChunk.model_validate(event)
        ChatCompletionResponseStreamChunk.model_validate(event)


def test_llama_stack_completion() -> None:
    response = CompletionResponse(
        content=" Paris.",
        stop_reason=StopReason.out_of_tokens,
        logprobs=[TokenLogProbs(logprobs_by_token={" Paris": -0.1})],
        metrics=[MetricInResponse(metric="prompt_tokens", value=5)],
    )
    server = Server(lambda _: answer("CompletionResponse", response))
    result = server.llama_stack().inference.completion(
        model_id="smollm2",
        content="The capital of France is",
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 3},
        response_format={"type": "grammar", "bnf": {"root": "answer"}},
        logprobs={"top_k": 1},
    )
    request = parse_request(server, CompletionRequest, "CompletionRequest")
    assert request.content == "The capital of France is"
    assert isinstance(request.response_format, common.GrammarResponseFormat)
    assert result.content == " Paris." and result.stop_reason == "out_of_tokens"


def test_llama_stack_completion_stream() -> None:
    chunks = [
        CompletionResponseStreamChunk(delta=" Par"),
        CompletionResponseStreamChunk(delta="is", stop_reason=StopReason.end_of_turn),
    ]
    events = [answer("CompletionResponseStreamChunk", c) for c in chunks]
    server = Server(lambda _: sse(events))
    received = list(
        server.llama_stack().inference.completion(
            model_id="smollm2",
            content=[{"type": "text", "text": "The capital of France is"}],
            stream=True,
        )
    )
    request = parse_request(server, CompletionRequest, "CompletionRequest")
    assert isinstance(request.content[0], TextContentItem)
    assert "".join(c.delta for c in received) == " Paris"
    assert received[-1].stop_reason == "end_of_turn"


@pytest.mark.parametrize(
    "contents",
    [["first text", "second text"], [{"type": "text", "text": "first text"}]],
    ids=["strings", "items"],
)
def test_llama_stack_embeddings(contents: list[Any]) -> None:
    response = EmbeddingsResponse(embeddings=[[0.25, -0.5, 1.0] for _ in contents])
    server = Server(lambda _: answer("EmbeddingsResponse", response))
    result = server.llama_stack().inference.embeddings(
        model_id="all-MiniLM-L6-v2",
        contents=contents,
        text_truncation="end",
        output_dimension=3,
        task_type="query",
    )
    request = parse_request(server, EmbeddingsRequest, "EmbeddingsRequest")
    assert len(request.contents) == len(contents)
    assert request.text_truncation == "end" and request.task_type == "query"
    assert result.embeddings[0] == [0.25, -0.5, 1.0]


def test_llama_stack_batch_chat_completion() -> None:
    response = BatchChatCompletionResponse(batch=[chat_response(), chat_response()])
    server = Server(lambda _: answer("BatchChatCompletionResponse", response))
    result = server.llama_stack().inference.batch_chat_completion(
        model_id="smollm2",
        messages_batch=[[USER], CONVERSATION],
        tools=[WEATHER_TOOL],
        tool_config={"tool_choice": "auto"},
        sampling_params={"strategy": {"type": "top_k", "top_k": 5}, "max_tokens": 16},
        response_format={"type": "json_schema", "json_schema": ANSWER_SCHEMA},
        logprobs={"top_k": 1},
    )
    request = parse_request(server, BatchChatCompletionRequest, "BatchChatCompletionRequest")
    singles = request.chat_completion_requests()
    assert [len(r.messages) for r in singles] == [1, 5]
    assert singles[1].tools == request.tools and singles[0].stream is False
    assert len(result.batch) == 2
    assert result.batch[1].completion_message.stop_reason == "end_of_turn"


def test_llama_stack_batch_completion() -> None:
    response = BatchCompletionResponse(
        batch=[
            CompletionResponse(content="4", stop_reason=StopReason.end_of_turn),
            CompletionResponse(content="blue", stop_reason=StopReason.end_of_turn),
        ]
    )
    server = Server(lambda _: answer("BatchCompletionResponse", response))
    result = server.llama_stack().inference.batch_completion(
        model_id="smollm2",
        content_batch=["2+2=", [{"type": "text", "text": "The sky is"}]],
        sampling_params={"strategy": {"type": "greedy"}, "max_tokens": 2},
    )
    request = parse_request(server, BatchCompletionRequest, "BatchCompletionRequest")
    assert [r.content for r in request.completion_requests()][0] == "2+2="
    assert [c.content for c in result.batch] == ["4", "blue"]


# --- Llama Stack models, inspect, providers --------------------------------------------


def test_llama_stack_models() -> None:
    embedding = Model(
        identifier="all-MiniLM-L6-v2",
        provider_resource_id="sentence-transformers/all-MiniLM-L6-v2",
        provider_id="sentence-transformers",
        metadata={"embedding_dimension": 384},
        model_type="embedding",
    )
    llm = Model(identifier="smollm2", provider_id="transformers")

    def respond(request: httpx.Request) -> dict[str, Any]:
        if request.method == "POST":
            return answer("Model", embedding)
        if request.url.path == "/v1/models":
            return answer("ListModelsResponse", ListModelsResponse(data=[llm, embedding]))
        return answer("Model", llm)

    server = Server(respond)
    client = server.llama_stack()
    registered = client.models.register(
        model_id="all-MiniLM-L6-v2",
        provider_model_id="sentence-transformers/all-MiniLM-L6-v2",
        provider_id="sentence-transformers",
        metadata={"embedding_dimension": 384},
        model_type="embedding",
    )
    request = parse_request(server, RegisterModelRequest, "RegisterModelRequest")
    assert request.model_type is models.ModelType.embedding
    assert registered.api_model_type == "embedding"
    assert registered.metadata == {"embedding_dimension": 384}

    listed = client.models.list()
    assert [m.identifier for m in listed] == ["smollm2", "all-MiniLM-L6-v2"]
    assert listed[0].type == "model" and listed[0].api_model_type == "llm"
    assert client.models.retrieve("smollm2").provider_id == "transformers"
    assert wire(llm) == {
        "identifier": "smollm2",
        "provider_id": "transformers",
        "type": "model",
        "metadata": {},
        "model_type": "llm",
    }


def test_llama_stack_inspect_and_providers() -> None:
    provider = ProviderInfo(
        api="inference",
        provider_id="transformers",
        provider_type="inline::transformers",
        config={"device": "cpu", "max_batch": 8, "api_key": "********"},
        health={"status": "OK"},
    )
    replies = {
        "/v1/health": answer("HealthInfo", HealthInfo(status="Not Implemented")),
        "/v1/version": answer("VersionInfo", VersionInfo(version="0.2.12")),
        "/v1/inspect/routes": answer(
            "ListRoutesResponse",
            ListRoutesResponse(
                data=[
                    RouteInfo(
                        route="/v1/inference/chat-completion",
                        method="POST",
                        provider_types=["inline::transformers"],
                    )
                ]
            ),
        ),
        "/v1/providers": answer("ListProvidersResponse", ListProvidersResponse(data=[provider])),
        "/v1/providers/transformers": answer("ProviderInfo", provider),
    }
    client = Server(lambda r: replies[r.url.path]).llama_stack()
    assert client.inspect.health().status == "Not Implemented"
    assert client.inspect.version().version == "0.2.12"
    assert client.routes.list()[0].provider_types == ["inline::transformers"]
    assert client.providers.list()[0].config["max_batch"] == 8
    assert client.providers.retrieve("transformers").health == {"status": "OK"}
    assert inspect.HealthStatus("Not Implemented") is inspect.HealthStatus.NOT_IMPLEMENTED


# --- OpenAI-compatible -----------------------------------------------------------------

OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
OPENAI_MESSAGES: list[dict[str, Any]] = [
    {"role": "developer", "content": "Answer in JSON."},
    {"role": "system", "content": [{"type": "text", "text": "You are terse."}], "name": "ops"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather in Paris? And what is this?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64,iVBORw0=", "detail": "low"},
            },
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
]


def openai_chat_completion() -> OpenAIChatCompletion:
    return OpenAIChatCompletion(
        id="chatcmpl-1",
        created=1_750_000_000,
        model="smollm2",
        choices=[
            OpenAIChoice(
                index=0,
                finish_reason="tool_calls",
                message=OpenAIAssistantMessageParam(
                    content="Checking.",
                    tool_calls=[
                        OpenAIChatCompletionToolCall(
                            id="call_2",
                            function=OpenAIChatCompletionToolCallFunction(
                                name="get_weather", arguments='{"city": "Oslo"}'
                            ),
                        )
                    ],
                ),
                logprobs=OpenAIChoiceLogprobs(
                    content=[
                        OpenAITokenLogProb(
                            token="Check",
                            bytes=[67, 104],
                            logprob=-0.05,
                            top_logprobs=[OpenAITopLogProb(token="Check", logprob=-0.05)],
                        )
                    ]
                ),
            )
        ],
        usage=OpenAIChatCompletionUsage(prompt_tokens=30, completion_tokens=9, total_tokens=39),
    )


def test_openai_chat_completion() -> None:
    completion = openai_chat_completion()
    server = Server(lambda _: answer("OpenAIChatCompletion", completion, added=["usage"]))
    result = server.openai().chat.completions.create(
        model="smollm2",
        messages=OPENAI_MESSAGES,
        tools=[OPENAI_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True},
        },
        frequency_penalty=0.1,
        presence_penalty=0.2,
        logit_bias={"50256": -100},
        logprobs=True,
        top_logprobs=1,
        max_completion_tokens=64,
        max_tokens=64,
        n=1,
        seed=7,
        stop=["\n\n"],
        temperature=0.5,
        top_p=0.9,
        user="u-1",
        store=True,
        metadata={"team": "a"},
    )

    assert server.requests[0].url.path == "/v1/openai/v1/chat/completions"
    body = server.body
    # The SDK sends fields the contract does not list, and a null `content` beside tool
    # calls where the contract has none: check the rest against it.
    extras = {"store", "metadata"}
    checked = {k: v for k, v in body.items() if k not in extras}
    checked["messages"] = [{k: v for k, v in m.items() if v is not None} for m in body["messages"]]
    contract.validate("OpenaiChatCompletionRequest", checked)
    request = OpenAIChatCompletionRequest.model_validate(body)
    assert set(request.model_extra) == extras
    assert [m.role for m in request.messages] == [
        "developer",
        "system",
        "user",
        "assistant",
        "tool",
    ]
    assert request.messages[2].content[1].image_url.detail == "low"
    assert request.messages[3].content is None
    assert request.messages[3].tool_calls[0].function.name == "get_weather"
    assert request.response_format.json_schema.schema_ == ANSWER_SCHEMA
    assert request.tools == [OPENAI_TOOL]

    assert result.choices[0].message.tool_calls[0].function.arguments == '{"city": "Oslo"}'
    assert result.usage.total_tokens == 39
    openai.types.chat.ChatCompletion.model_validate(wire(completion))
    ls_chat.OpenAIChatCompletion.model_validate(wire(completion))


def openai_chat_stream() -> list[OpenAIChatCompletionChunk]:
    def chunk(delta: OpenAIChoiceDelta | None, finish: str | None = None, **kw: Any) -> Any:
        choices = (
            [] if delta is None else [OpenAIChunkChoice(delta=delta, finish_reason=finish, index=0)]
        )
        return OpenAIChatCompletionChunk(
            id="chatcmpl-2", created=1, model="smollm2", choices=choices, **kw
        )

    def call(**kw: Any) -> OpenAIChatCompletionToolCall:
        return OpenAIChatCompletionToolCall(index=0, **kw)

    return [
        chunk(OpenAIChoiceDelta(role="assistant", content="")),
        chunk(OpenAIChoiceDelta(content="Let me check.")),
        chunk(
            OpenAIChoiceDelta(
                tool_calls=[
                    call(
                        id="call_3",
                        function=OpenAIChatCompletionToolCallFunction(
                            name="get_weather", arguments=""
                        ),
                    )
                ]
            )
        ),
        chunk(
            OpenAIChoiceDelta(
                tool_calls=[
                    call(
                        function=OpenAIChatCompletionToolCallFunction(arguments='{"city": "Oslo"}')
                    )
                ]
            )
        ),
        chunk(OpenAIChoiceDelta(), "tool_calls"),
        chunk(
            None,
            usage=OpenAIChatCompletionUsage(prompt_tokens=5, completion_tokens=6, total_tokens=11),
        ),
    ]


def test_openai_chat_completion_stream() -> None:
    events = [wire(c) for c in openai_chat_stream()]
    assert all("finish_reason" in choice for e in events for choice in e["choices"])
    for event in events:
        # The contract types `finish_reason` as a string, where OpenAI sends null until
        # the last chunk: with a string in its place, all else follows the contract.
        relaxed = {k: v for k, v in event.items() if k != "usage"}
        relaxed["choices"] = [
            {**c, "finish_reason": c["finish_reason"] or ""} for c in event["choices"]
        ]
        contract.validate("OpenAIChatCompletionChunk", relaxed)

    # No `data: [DONE]` at the end: llama-stack-client 0.2.12 tries to parse it as JSON,
    # and the OpenAI SDK needs none (the stream ends with the response).
    server = Server(lambda _: sse(events))
    stream = server.openai().chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[OPENAI_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    received = list(stream)
    request = parse_request(server, OpenAIChatCompletionRequest, "OpenaiChatCompletionRequest")
    assert request.stream is True and request.stream_options == {"include_usage": True}
    assert isinstance(request.messages[0], OpenAIUserMessageParam)

    assert len(received) == len(events)
    assert received[0].choices[0].finish_reason is None
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments
        for c in received
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "Oslo"}
    assert received[-2].choices[0].finish_reason == "tool_calls"
    assert received[-1].choices == [] and received[-1].usage.total_tokens == 11
    for event in events:
        openai.types.chat.ChatCompletionChunk.model_validate(event)

    # llama-stack-client reads the same stream.
    chunks = list(
        server.llama_stack().chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "Weather?"}], stream=True
        )
    )
    assert chunks[1].choices[0].delta.content == "Let me check."
    assert chunks[-2].choices[0].finish_reason == "tool_calls"


def test_openai_completion() -> None:
    completion = OpenAICompletion(
        id="cmpl-1",
        created=1,
        model="smollm2",
        choices=[OpenAICompletionChoice(index=0, text=" Paris.", finish_reason="length")],
        usage=OpenAIChatCompletionUsage(prompt_tokens=5, completion_tokens=2, total_tokens=7),
    )
    server = Server(lambda _: answer("OpenAICompletion", completion, added=["usage"]))
    result = server.openai().completions.create(
        model="smollm2",
        prompt="The capital of France is",
        max_tokens=2,
        temperature=0.0,
        top_p=1.0,
        stop="\n",
        echo=False,
        best_of=1,
        n=1,
        seed=1,
        logprobs=2,
        suffix="",
        user="u-1",
        extra_body={"guided_choice": ["Paris", "Lyon"], "prompt_logprobs": 1},
    )
    body = server.body
    contract.validate("OpenaiCompletionRequest", {k: v for k, v in body.items() if k != "logprobs"})
    request = OpenAICompletionRequest.model_validate(body)
    assert request.logprobs == 2 and request.guided_choice == ["Paris", "Lyon"]
    assert OpenAICompletionRequest.model_validate({**body, "logprobs": True}).logprobs is True
    for prompt in (["a", "b"], [1, 2, 3], [[1, 2], [3]]):
        OpenAICompletionRequest.model_validate({**body, "prompt": prompt})

    assert result.choices[0].text == " Paris." and result.usage.total_tokens == 7
    openai.types.Completion.model_validate(wire(completion))
    ls_types.CompletionCreateResponse.model_validate(wire(completion))


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_openai_embeddings(encoding: str) -> None:
    vectors = [[0.5, -0.25, 1.0], [0.0, 2.0, -1.5]]

    def respond(request: httpx.Request) -> dict[str, Any]:
        body = json.loads(request.content)

        def encode(v: list[float]) -> list[float] | str:
            if body.get("encoding_format") == "base64":
                return base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
            return v

        response = OpenAIEmbeddingsResponse(
            model="all-MiniLM-L6-v2",
            data=[OpenAIEmbeddingData(index=i, embedding=encode(v)) for i, v in enumerate(vectors)],
            usage=OpenAIEmbeddingUsage(prompt_tokens=4, total_tokens=4),
        )
        return answer("OpenAIEmbeddingsResponse", response)

    server = Server(respond)
    kwargs = {} if encoding == "base64" else {"encoding_format": "float"}
    result = server.openai().embeddings.create(
        model="all-MiniLM-L6-v2", input=["first", "second"], dimensions=3, user="u", **kwargs
    )
    request = parse_request(server, OpenAIEmbeddingsRequest, "OpenaiEmbeddingsRequest")
    assert request.encoding_format == encoding  # the SDK asks for base64 unless told otherwise
    assert request.input == ["first", "second"]
    assert [d.embedding for d in result.data] == vectors
    assert OpenAIEmbeddingsRequest(model="m", input="x").encoding_format == "float"


def test_openai_models() -> None:
    listing = OpenAIListModelsResponse(
        data=[
            OpenAIModel(id="smollm2", created=1, owned_by="transformers"),
            OpenAIModel(id="all-MiniLM-L6-v2", created=1, owned_by="sentence-transformers"),
        ]
    )
    server = Server(lambda _: answer("OpenAIListModelsResponse", listing, added=["object"]))
    page = server.openai().models.list()
    assert server.requests[0].url.path == "/v1/openai/v1/models"
    assert [m.id for m in page] == ["smollm2", "all-MiniLM-L6-v2"]
    assert page.object == "list"
    openai.types.Model.model_validate(wire(listing.data[0]))


def test_stored_chat_completions() -> None:
    base = openai_chat_completion()
    stored = OpenAICompletionWithInputMessages(
        **base.model_dump(exclude={"usage"}),
        input_messages=[OPENAI_MESSAGES[0], USER],
    )
    page = ListOpenAIChatCompletionResponse(
        data=[stored], has_more=False, first_id=stored.id, last_id=stored.id
    )

    def respond(request: httpx.Request) -> dict[str, Any]:
        if request.url.path.endswith("/chat/completions"):
            return answer("ListOpenAIChatCompletionResponse", page)
        return answer("OpenAICompletionWithInputMessages", stored)

    client = Server(respond).llama_stack()
    listed = client.chat.completions.list(limit=10, model="smollm2", order="desc")
    assert listed.data[0].input_messages[1].content == "hi"
    retrieved = client.chat.completions.retrieve("chatcmpl-1")
    assert retrieved.choices[0].message.tool_calls[0].id == "call_2"
    assert retrieved.input_messages[0].role == "developer"
