"""`remote::watsonx` against watsonx.ai's API and IBM Cloud IAM on 127.0.0.1
(`remote_watsonx_server`): the API key exchanged once for a token, chat on the chat API,
completions on text generation (whole and streamed), embeddings, the model listing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stackray.api.errors import BadRequestError
from stackray.api.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
    OpenAICompletionRequest,
)
from stackray.api.models import ModelType
from tests.unit.support.remote_servers import FakeService, call, collect, make_adapter
from tests.unit.support.remote_watsonx_server import (
    API_KEY,
    CHAT_MODEL,
    EMBEDDING_MODEL,
    WatsonX,
    watsonx_app,
)


@pytest.fixture()
def watsonx() -> Iterator[tuple[FakeService, WatsonX]]:
    state = WatsonX()
    service = FakeService(lambda svc: watsonx_app(svc, state)).start()
    yield service, state
    service.stop()


def adapter(service: FakeService, **config: Any) -> Any:
    base = {
        "url": service.url,
        "api_key": API_KEY,
        "project_id": "proj-1",
        "iam_url": f"{service.url}/identity/token",
        **config,
    }
    return make_adapter("remote::watsonx", base, "watsonx")


def test_chat_with_a_token_from_iam_reused_across_requests(watsonx):
    service, state = watsonx
    wx = adapter(service)

    async def two_chats() -> list[Any]:
        try:
            return [
                await wx.chat_completion(
                    ChatCompletionRequest(
                        model_id=CHAT_MODEL, messages=[{"role": "user", "content": text}]
                    )
                )
                for text in ("hello", "again")
            ]
        finally:
            await wx.close()

    import asyncio

    first, second = asyncio.run(two_chats())
    assert first.completion_message.content == "echo: hello"
    assert second.completion_message.content == "echo: again"
    assert state.issued == 1
    chats = [r for r in service.requests if r.path == "/ml/v1/text/chat"]
    assert [r.headers["authorization"] for r in chats] == ["Bearer iam-token-1"] * 2
    assert chats[0].body["model_id"] == CHAT_MODEL and chats[0].body["project_id"] == "proj-1"
    token_request = next(r for r in service.requests if r.path == "/identity/token")
    assert "apikey=ibm-cloud-key" in token_request.body


def test_openai_chat_whole_and_streamed(watsonx):
    service, _ = watsonx
    request = OpenAIChatCompletionRequest(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "one two"}]
    )
    whole = call(adapter(service), "openai_chat_completion", request)
    assert whole.choices[0].message.content == "echo: one two" and whole.model == CHAT_MODEL
    chunks = collect(
        adapter(service),
        "openai_chat_completion_stream",
        request.model_copy(update={"stream": True}),
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: one two"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completions_on_text_generation_with_watsonx_parameters(watsonx):
    service, _ = watsonx
    request = CompletionRequest(
        model_id=CHAT_MODEL,
        content="a b c d",
        sampling_params={"strategy": {"type": "top_k", "top_k": 5}, "max_tokens": 3},
    )
    answer = call(adapter(service), "completion", request)
    assert answer.content == "echo: a b" and answer.stop_reason.value == "out_of_tokens"
    sent = service.last.body
    assert sent["parameters"] == {
        "decoding_method": "sample",
        "temperature": 1.0,
        "top_k": 5,
        "max_new_tokens": 3,
    }
    assert sent["input"] == "a b c d" and service.last.path == "/ml/v1/text/generation"
    chunks = collect(
        adapter(service), "completion_stream", CompletionRequest(model_id=CHAT_MODEL, content="x y")
    )
    assert "".join(c.delta for c in chunks) == "echo: x y"
    assert chunks[-1].stop_reason.value == "end_of_turn"
    assert service.last.body["parameters"]["decoding_method"] == "greedy"
    openai = call(
        adapter(service),
        "openai_completion",
        OpenAICompletionRequest(model=CHAT_MODEL, prompt="p q"),
    )
    assert openai.choices[0].text == "echo: p q" and openai.choices[0].finish_reason == "stop"


def test_embeddings_and_the_model_listing(watsonx):
    service, _ = watsonx
    vectors = call(
        adapter(service),
        "embeddings",
        EmbeddingsRequest(model_id=EMBEDDING_MODEL, contents=["a b", "ccc"]),
    )
    assert vectors.embeddings == [[3.0, 2.0, 0.25, 0.25], [3.0, 1.0, 0.25, 0.25]]
    models = {m.identifier: m.model_type for m in call(adapter(service), "list_models")}
    assert models == {CHAT_MODEL: ModelType.llm, EMBEDDING_MODEL: ModelType.embedding}


def test_a_wrong_key_a_missing_key_or_project_are_named(watsonx):
    service, _ = watsonx
    chat = ChatCompletionRequest(model_id=CHAT_MODEL, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(BadRequestError, match="could not be found"):
        call(adapter(service, api_key="wrong"), "chat_completion", chat)
    with pytest.raises(BadRequestError, match="no API key"):
        call(adapter(service, api_key=None), "chat_completion", chat)
    with pytest.raises(BadRequestError, match="no project_id"):
        call(adapter(service, project_id=None), "chat_completion", chat)
    assert not any(r.path.startswith("/ml/") for r in service.requests)
