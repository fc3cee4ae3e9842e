"""Model-free tests of the transformers engine's parts: text streaming, sampling, tool calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from stackray.api.errors import BadRequestError
from stackray.providers.inline.inference.transformers.chat_format import (
    parse_tool_calls,
    render_chat,
    template_supports_tools,
    tool_call_json_schema,
)
from stackray.providers.inline.inference.transformers.loader import resolve_model_source
from stackray.providers.inline.inference.transformers.sampling import (
    SamplingConfig,
    SamplingTensors,
    apply_repetition_penalty,
    make_generator,
    sample,
    top_logprobs,
)
from stackray.providers.inline.inference.transformers.text_stream import TextStream

# ----------------------------------------------------------------------------- TextStream

VOCAB = ["Hel", "lo", " W", "orld", "!", " ST", "OP", " after", "\xe2", "\x82\xac"]


def _decode(ids: list[int]) -> str:
    # Byte-level like a BPE tokenizer: a multi-byte character can span tokens.
    raw = "".join(VOCAB[i] for i in ids).encode("latin-1")
    return raw.decode("utf-8", errors="replace")


def _stream(ids: list[int], stop: list[str]) -> tuple[list[str], TextStream]:
    ts = TextStream(_decode, stop)
    pieces = []
    for i in ids:
        ts.push(i)
        pieces.append(ts.take())
        if ts.stopped:
            break
    if not ts.stopped:
        pieces.append(ts.take(final=True))
    return pieces, ts


def test_text_stream_without_stop_emits_everything() -> None:
    pieces, ts = _stream([0, 1, 2, 3, 4], [])
    assert "".join(pieces) == "Hello World!"
    assert pieces[:2] == ["Hel", "lo"]  # streamed token by token
    assert not ts.stopped


def test_text_stream_multibyte_character_waits_for_its_last_byte() -> None:
    pieces, _ = _stream([0, 8, 9, 4], [])
    assert pieces[1] == ""  # half of the euro sign: held
    assert "".join(pieces) == "Hel\u20ac!"


def test_text_stream_stop_string_cut_and_held_back() -> None:
    # " STOP" spans two tokens; " ST" must be held until "OP" confirms the stop.
    pieces, ts = _stream([0, 1, 5, 6, 7], [" STOP"])
    assert ts.stopped
    assert "".join(pieces) == "Hello"
    assert pieces[2] == ""  # " ST" was held back, never emitted


def test_text_stream_held_text_released_when_not_a_stop() -> None:
    pieces, ts = _stream([0, 1, 5, 3, 4], [" STOP"])
    assert not ts.stopped
    assert pieces[2] == ""  # " ST" held ...
    assert pieces[3] == " STorld"  # ... and released once it cannot be " STOP"
    assert "".join(pieces) == "Hello STorld!"


def test_text_stream_stop_inside_a_token_and_held_text_flushed_at_end() -> None:
    pieces, ts = _stream([0, 1, 2], ["lo W"])
    assert ts.stopped and "".join(pieces) == "Hel"
    pieces, ts = _stream([0, 1, 5], [" STOP"])
    assert not ts.stopped and "".join(pieces) == "Hello ST"  # flushed by final=True


# ----------------------------------------------------------------------------- sampling


def _tensors(*configs: SamplingConfig) -> SamplingTensors:
    return SamplingTensors.build(list(configs), torch.device("cpu"))


def test_sampling_greedy_and_topk1_take_argmax() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    params = _tensors(SamplingConfig(), SamplingConfig(strategy="top_k", top_k=1))
    gens = [make_generator(0), make_generator(0)]
    assert sample(logits.clone(), params, gens).tolist() == [1, 0]


def test_sampling_top_p_and_top_k_never_pick_filtered_tokens() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 2))
    params = _tensors(
        SamplingConfig(strategy="top_p", top_p=0.7, seed=1),
        SamplingConfig(strategy="top_k", top_k=2, seed=2),
    )
    gens = [make_generator(1), make_generator(2)]
    picks = [sample(logits.clone(), params, gens).tolist() for _ in range(200)]
    assert {p[0] for p in picks} <= {0, 1}
    assert {p[1] for p in picks} <= {0, 1}
    assert {p[0] for p in picks} == {0, 1}  # and both survivors do get picked


def test_sampling_seed_reproducible_per_row_regardless_of_neighbours() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 50)
    cfg = SamplingConfig(strategy="top_p", top_p=0.9, temperature=0.8, seed=7)
    alone = [sample(logits[1:2].clone(), _tensors(cfg), [make_generator(7)]).item()]
    params = _tensors(SamplingConfig(), cfg, SamplingConfig(strategy="top_k", top_k=5))
    gens = [make_generator(None), make_generator(7), make_generator(None)]
    batched = sample(logits.clone(), params, gens)
    assert batched[1].item() == alone[0]
    assert batched[0].item() == logits[0].argmax().item()


def test_repetition_penalty_hf_semantics() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    seen = torch.tensor([[True, True, False]])
    out = apply_repetition_penalty(logits, seen, torch.tensor([[2.0]]))
    assert out.tolist() == [[1.0, -4.0, 1.0]]


def test_top_logprobs_includes_chosen_token() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    out = top_logprobs(logits, torch.tensor([3]), [2])
    assert out[0] is not None
    assert [t for t, _ in out[0]] == [0, 1, 3]
    assert all(lp <= 0 for _, lp in out[0])


def test_sampling_config_validation() -> None:
    with pytest.raises(BadRequestError):
        SamplingConfig(temperature=-1).validate()
    with pytest.raises(BadRequestError):
        SamplingConfig(top_p=0).validate()
    with pytest.raises(BadRequestError):
        SamplingConfig(strategy="beam").validate()  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- tool calls

TOOLS = ["get_weather", "search"]


def test_parse_hermes_tool_calls() -> None:
    text = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>{"name": "search", "arguments": "{\\"q\\": \\"rain\\"}"}</tool_call>'
    )
    content, calls = parse_tool_calls(text, set(TOOLS))
    assert content == "Let me check."
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("search", {"q": "rain"}),
    ]
    assert json.loads(calls[0].raw)["name"] == "get_weather"


def test_parse_unclosed_tag_bare_json_and_parameters_key() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "search", "arguments": {}}', {"search"})
    assert [c.name for c in calls] == ["search"]
    text = 'Sure: {"name": "get_weather", "parameters": {"city": "Oslo"}} done'
    content, calls = parse_tool_calls(text, set(TOOLS))
    assert calls[0].arguments == {"city": "Oslo"} and content == "Sure:  done"
    text = '```json\n[{"name": "search", "arguments": {"q": "a"}}]\n```'
    content, calls = parse_tool_calls(text, set(TOOLS))
    assert [c.arguments for c in calls] == [{"q": "a"}] and content == ""


def test_parse_ignores_unknown_names_and_non_calls() -> None:
    text = '{"name": "rm_rf", "arguments": {}} and {"a": 1}'
    assert parse_tool_calls(text, set(TOOLS)) == (text, [])
    assert parse_tool_calls("plain answer", set(TOOLS)) == ("plain answer", [])
    assert parse_tool_calls('<tool_call>{"name": "search", ', {"search"})[1] == []


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {"name": "search", "parameters": {"type": "object", "properties": {}}},
}


def test_tool_call_json_schema() -> None:
    import jsonschema

    schema = tool_call_json_schema([WEATHER_TOOL, SEARCH_TOOL], "required")
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "X"}}, schema)
    jsonschema.validate({"name": "search", "arguments": {}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "get_weather", "arguments": {}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "other", "arguments": {}}, schema)
    named = tool_call_json_schema(
        [WEATHER_TOOL, SEARCH_TOOL], {"type": "function", "function": {"name": "search"}}
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "get_weather", "arguments": {"city": "X"}}, named)
    assert tool_call_json_schema([WEATHER_TOOL, SEARCH_TOOL], "search") == named
    with pytest.raises(BadRequestError):
        tool_call_json_schema([WEATHER_TOOL], "nope")


class _ToolTemplateTokenizer:
    """Stands in for a tokenizer whose chat template renders `tools` itself."""

    chat_template = "{% if tools %}...{% endif %}"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> str:
        self.calls.append({"messages": messages, **kwargs})
        return "rendered"


def test_render_chat_passes_tools_to_a_template_that_supports_them() -> None:
    tok = _ToolTemplateTokenizer()
    assert template_supports_tools(tok)
    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert render_chat(tok, history, [WEATHER_TOOL], "auto") == "rendered"
    call = tok.calls[0]
    assert call["tools"][0]["function"]["name"] == "get_weather"
    assert call["add_generation_prompt"] is True
    # Arguments reach the template as an object, as HF templates expect.
    assert call["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Rome"}


def test_resolve_bad_source_names_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError) as info:
        resolve_model_source("no-such-model-xyz")
    assert "no-such-model-xyz" in info.value.message and "tried" in info.value.message
    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"x")
    with pytest.raises(BadRequestError):
        resolve_model_source(str(not_gguf))
    with pytest.raises(BadRequestError):
        resolve_model_source(str(tmp_path))  # a directory without config.json


# ----------------------------------------------------------------------------- model cache


class _FakeSaveable:
    """Writes a file per `save_pretrained`, like a model or tokenizer would."""

    def __init__(self, filename: str, content: str) -> None:
        self.filename, self.content = filename, content

    def save_pretrained(self, directory: str) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / self.filename).write_text(self.content)


def test_cache_entry_written_atomically_and_race_is_harmless(tmp_path: Path) -> None:
    from stackray.providers.inline.inference.transformers import loader

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    entry = loader.gguf_cache_dir(tmp_path / "cache", gguf)
    first = (_FakeSaveable("config.json", "{}"), _FakeSaveable("tokenizer.json", "a"))
    loader._write_cache_entry(*first, entry, gguf)
    assert loader._is_complete_entry(entry)
    # A second process finishing later finds the entry in place and keeps the first copy.
    second = (_FakeSaveable("config.json", "{}"), _FakeSaveable("tokenizer.json", "b"))
    loader._write_cache_entry(*second, entry, gguf)
    assert (entry / "tokenizer.json").read_text() == "a"
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temp dirs left
    # A changed file gets a new key.
    gguf.write_bytes(b"GGUF2")
    assert loader.gguf_cache_dir(tmp_path / "cache", gguf) != entry
