"""`remote::tgi` against TGI's own protocol on 127.0.0.1 (`remote_tgi_server`): completions
on /generate and /generate_stream with TGI's parameters, chat on its Messages API, the
model from /info, TGI's validation errors, and no embeddings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stackray.api.errors import BadRequestError, ProviderError
from stackray.api.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIChatCompletionRequest,
)
from stackray.api.models import Model
from tests.unit.support.remote_servers import Failure, FakeService, call, collect, make_adapter
from tests.unit.support.remote_tgi_server import tgi_app


@pytest.fixture(scope="module")
def _tgi() -> Iterator[FakeService]:
    service = FakeService(tgi_app).start()
    yield service
    service.stop()


@pytest.fixture()
def tgi(_tgi: FakeService) -> FakeService:
    return _tgi.reset(["meta-llama/Llama-3.2-3B-Instruct"])


def adapter(tgi: FakeService):
    return make_adapter("remote::tgi", {"url": tgi.url, "retry_backoff_s": 0.01}, "tgi")


def completion(text: str, **sampling: object) -> CompletionRequest:
    return CompletionRequest(model_id="m", content=text, sampling_params=sampling or None)


def test_completion_goes_to_generate_with_tgis_parameters(tgi: FakeService):
    answer = call(
        adapter(tgi),
        "completion",
        completion(
            "one two three",
            strategy={"type": "top_p", "temperature": 0.7, "top_p": 0.9},
            max_tokens=3,
        ),
    )
    assert answer.content == "echo: one two"
    assert answer.stop_reason.value == "out_of_tokens"
    assert tgi.last.path == "/generate"
    parameters = tgi.last.body["parameters"]
    assert parameters == {
        "details": True,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_new_tokens": 3,
    }
    assert tgi.last.body["inputs"] == "one two three"
    metrics = {m.metric: m.value for m in answer.metrics or []}
    assert metrics["completion_tokens"] == 3


def test_greedy_is_do_sample_false_and_stop_sequences_are_a_list(tgi: FakeService):
    answer = call(adapter(tgi), "completion", completion("say stop now", stop=["now"]))
    assert answer.content == "echo: say stop "
    assert answer.stop_reason.value == "end_of_turn"
    parameters = tgi.last.body["parameters"]
    assert parameters["do_sample"] is False and "temperature" not in parameters
    assert parameters["stop"] == ["now"]


def test_streamed_completion_skips_the_end_of_sequence_token(tgi: FakeService):
    chunks = collect(adapter(tgi), "completion_stream", completion("a b c"))
    assert tgi.last.path == "/generate_stream" and tgi.last.body["stream"] is True
    assert "".join(c.delta for c in chunks) == "echo: a b c"
    assert "</s>" not in "".join(c.delta for c in chunks)
    assert chunks[-1].stop_reason.value == "end_of_turn"


def test_a_failure_mid_stream_is_a_provider_error(tgi: FakeService):
    tgi.fail(Failure(mid_stream=True))
    with pytest.raises(ProviderError, match="the shard died"):
        collect(adapter(tgi), "completion_stream", completion("a b c d e"))


def test_chat_goes_to_the_messages_api(tgi: FakeService):
    chat = ChatCompletionRequest(model_id="m", messages=[{"role": "user", "content": "hello"}])
    assert call(adapter(tgi), "chat_completion", chat).completion_message.content == ("echo: hello")
    assert tgi.last.path == "/v1/chat/completions"
    openai = OpenAIChatCompletionRequest(
        model="tgi", messages=[{"role": "user", "content": "x y"}], stream=True
    )
    chunks = collect(adapter(tgi), "openai_chat_completion_stream", openai)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: x y"


def test_the_model_is_the_one_info_names(tgi: FakeService):
    listed = call(adapter(tgi), "list_models")
    assert [m.identifier for m in listed] == ["meta-llama/Llama-3.2-3B-Instruct"]
    assert listed[0].metadata["max_total_tokens"] == 4096
    served = Model(
        identifier="llama",
        provider_id="tgi",
        provider_resource_id="meta-llama/Llama-3.2-3B-Instruct",
    )
    assert call(adapter(tgi), "register_model", served) == served
    other = Model(identifier="x", provider_id="tgi", provider_resource_id="some/other-model")
    with pytest.raises(BadRequestError, match="does not serve model 'some/other-model'"):
        call(adapter(tgi), "register_model", other)


def test_tgis_validation_errors_are_bad_requests_with_its_message(tgi: FakeService):
    message = "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096"
    tgi.fail(Failure(status=422, body={"error": message, "error_type": "validation"}))
    with pytest.raises(BadRequestError, match="must be <= 4096"):
        call(adapter(tgi), "completion", completion("x", max_tokens=5000))
    assert tgi.last.body["parameters"]["max_new_tokens"] == 5000


def test_embeddings_are_refused_naming_the_provider(tgi: FakeService):
    with pytest.raises(BadRequestError, match="provider 'tgi' .* serves no embeddings"):
        call(adapter(tgi), "embeddings", EmbeddingsRequest(model_id="m", contents=["x"]))
    assert tgi.requests == []
