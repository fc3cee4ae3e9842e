"""A `GenerationRequest` as vLLM's `SamplingParams`, without importing vllm.

`sampling_kwargs` gives the keyword arguments; `build_sampling_params` makes the object
with the vllm module it is given, guided decoding included (JSON schemas for
`response_format` and forced tool calls, EBNF grammars for a `grammar` response format): `GuidedDecodingParams(json=...)` in vLLM up to
0.10, `StructuredOutputsParams(json=...)` after.
"""

from __future__ import annotations

from typing import Any

from stackray.api.errors import BadRequestError

MAX_LOGPROBS = 20


def sampling_kwargs(
    request: Any, *, default_max_tokens: int, context_length: int, prompt_tokens: int
) -> dict[str, Any]:
    """`SamplingParams(**kwargs)` arguments for `request` (a `GenerationRequest`), plus
    `json_schema` and `grammar` (popped by `build_sampling_params`)."""
    sampling = request.sampling
    sampling.validate()
    room = context_length - prompt_tokens
    if room < 1:
        raise BadRequestError(
            f"the prompt has {prompt_tokens} tokens; the model's context holds {context_length}",
            field="messages",
        )
    max_tokens = min(request.max_tokens or default_max_tokens, room)
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": max_tokens,
        "stop": list(request.stop) or None,
        "repetition_penalty": sampling.repetition_penalty,
        "seed": sampling.seed,
        "skip_special_tokens": True,
    }
    if sampling.strategy == "greedy" or sampling.temperature == 0:
        kwargs.update(temperature=0.0, top_p=1.0, top_k=-1)
    elif sampling.strategy == "top_p":
        kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=-1)
    else:
        kwargs.update(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else -1,
        )
    if request.logprobs_top_k:
        if not 0 < request.logprobs_top_k <= MAX_LOGPROBS:
            raise BadRequestError(
                f"logprobs must be between 1 and {MAX_LOGPROBS}", field="logprobs"
            )
        kwargs["logprobs"] = request.logprobs_top_k
    kwargs["json_schema"] = request.json_schema
    kwargs["grammar"] = getattr(request, "grammar", None)
    return kwargs


def build_sampling_params(vllm_sampling: Any, kwargs: dict[str, Any]) -> Any:
    """`SamplingParams` from `vllm_sampling` (the `vllm.sampling_params` module)."""
    kwargs = dict(kwargs)
    schema = kwargs.pop("json_schema", None)
    grammar = kwargs.pop("grammar", None)
    guide = {"json": schema} if schema is not None else {"grammar": grammar} if grammar else None
    if guide is not None:
        if hasattr(vllm_sampling, "StructuredOutputsParams"):
            kwargs["structured_outputs"] = vllm_sampling.StructuredOutputsParams(**guide)
        else:
            kwargs["guided_decoding"] = vllm_sampling.GuidedDecodingParams(**guide)
    return vllm_sampling.SamplingParams(**kwargs)


def finish_reason(reason: str | None, stop_reason: Any) -> str | None:
    """The engine's finish reason ('eos' / 'stop' / 'length') for vLLM's: 'stop' is a stop
    string when `stop_reason` is one, the end of sequence otherwise."""
    if reason is None:
        return None
    if reason == "length":
        return "length"
    if reason == "stop" and isinstance(stop_reason, str):
        return "stop"
    return "eos"


def logprob_dicts(entries: Any) -> list[dict[str, float]]:
    """vLLM's per-token `{token_id: Logprob}` as `{token text: log-probability}`."""
    out = []
    for position in entries or []:
        out.append(
            {
                str(lp.decoded_token if lp.decoded_token is not None else token_id): float(
                    lp.logprob
                )
                for token_id, lp in (position or {}).items()
            }
        )
    return out
