"""`inline::vllm`: what runs without a GPU (config, host checks, Serve placement, the
translation to SamplingParams, the engine's streaming of vLLM outputs), and the real
engine on a GPU (`@pytest.mark.gpu`)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from types import SimpleNamespace
from typing import Any

import pytest
from ray.serve._private.build_app import build_app as build_serve_app

from stackray.api.errors import BadRequestError, ConfigError
from stackray.cli import main as cli_main
from stackray.deployments.app import build_app_from_config, provider_defaults, resolved_config
from stackray.providers.inline.inference.transformers import GenerationRequest, SamplingConfig
from stackray.providers.inline.inference.vllm import sampling
from stackray.providers.inline.inference.vllm.config import (
    VLLMConfig,
    check_host,
    deployment_options,
    local_gpu_count,
)
from stackray.providers.inline.inference.vllm.engine import VLLMEngine, engine_args

HOST_CAN_RUN = local_gpu_count() >= 1 and importlib.util.find_spec("vllm") is not None


def gpu_stack(**vllm_config: Any) -> tuple[Any, dict[str, Any]]:
    return resolved_config(
        {
            "stack": {
                "version": 2,
                "image_name": "gpu-test",
                "apis": ["inference"],
                "providers": {
                    "inference": [
                        {
                            "provider_id": "vllm",
                            "provider_type": "inline::vllm",
                            "config": vllm_config,
                        }
                    ]
                },
                "models": [{"model_id": "m", "provider_id": "vllm", "model_type": "llm"}],
                "deployments": {"gateway": {"num_replicas": 1}},
            }
        }
    )


def model_deployment(stack: Any, raw: dict[str, Any]) -> Any:
    app = build_app_from_config(stack, raw, gpus=True, host_checks=False)
    built = build_serve_app(app, name="stackray")
    return {d.name: d for d in built.deployments}["model-vllm"]


# ---- config and placement ----------------------------------------------------------------


def test_config_fields_as_in_llama_stack():
    config = VLLMConfig()
    assert (config.tensor_parallel_size, config.max_tokens, config.max_model_len) == (1, 4096, 4096)
    assert (config.max_num_seqs, config.enforce_eager, config.gpu_memory_utilization) == (
        4,
        False,
        0.3,
    )
    assert config.swap_space == 4
    with pytest.raises(ValueError, match="model_path"):
        VLLMConfig.model_validate({"model_path": "/x"})
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        VLLMConfig.model_validate({"gpu_memory_utilization": 1.5})


def test_one_gpu_replica_asks_for_its_gpu():
    assert deployment_options(VLLMConfig()) == {
        "ray_actor_options": {"num_cpus": 1, "num_gpus": 1.0}
    }
    assert deployment_options(VLLMConfig(num_gpus=0.5))["ray_actor_options"]["num_gpus"] == 0.5
    deployment = model_deployment(*gpu_stack(num_gpus=0.9))
    assert deployment.ray_actor_options["num_gpus"] == 0.9
    assert deployment._deployment_config.max_ongoing_requests == 64
    assert deployment._replica_config.placement_group_bundles is None


def test_tensor_parallel_replica_gets_a_placement_group():
    options = deployment_options(VLLMConfig(tensor_parallel_size=4, placement_strategy="PACK"))
    assert options["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0}
    assert options["placement_group_bundles"] == [{"CPU": 1}] + [{"CPU": 1, "GPU": 1}] * 4
    assert options["placement_group_strategy"] == "PACK"
    deployment = model_deployment(*gpu_stack(tensor_parallel_size=2))
    replica = deployment._replica_config
    assert replica.placement_group_bundles == [
        {"CPU": 1},
        {"CPU": 1, "GPU": 1},
        {"CPU": 1, "GPU": 1},
    ]
    assert replica.placement_group_strategy == "STRICT_PACK"
    assert deployment.ray_actor_options["num_gpus"] == 0
    assert (
        engine_args("m", VLLMConfig(tensor_parallel_size=2))["distributed_executor_backend"]
        == "ray"
    )
    assert "distributed_executor_backend" not in engine_args("m", VLLMConfig())


def test_run_config_deployment_options_still_win():
    stack, raw = gpu_stack()
    raw["deployments"]["vllm"] = {
        "ray_actor_options": {"num_gpus": 0.25},
        "max_ongoing_requests": 8,
    }
    from stackray.runtime.config import parse_config

    deployment = model_deployment(parse_config(raw), raw)
    assert deployment.ray_actor_options["num_gpus"] == 0.25
    assert deployment._deployment_config.max_ongoing_requests == 8


def test_provider_defaults_merge_provider_options():
    assert provider_defaults(False) == {
        "max_ongoing_requests": 64,
        "ray_actor_options": {"num_cpus": 1},
    }
    merged = provider_defaults(
        True, {"ray_actor_options": {"num_gpus": 0}, "placement_group_strategy": "PACK"}
    )
    assert merged["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0}
    assert merged["placement_group_strategy"] == "PACK"


# ---- where it can run ----------------------------------------------------------------------


def test_host_check_counts_the_clusters_gpus():
    with pytest.raises(ConfigError, match="provider 'vllm' .* needs 1 GPU.*the Ray cluster has 0"):
        check_host("vllm", VLLMConfig(), gpus=0.0)
    with pytest.raises(ConfigError, match="needs 4 GPU.*tensor_parallel_size=4.*has 2"):
        check_host("vllm", VLLMConfig(tensor_parallel_size=4), gpus=2.0)
    check_host("vllm", VLLMConfig(tensor_parallel_size=2), gpus=2.0)  # vllm is on the workers


def test_check_command_says_whether_this_machine_can_run_it(capsys):
    code = cli_main(["check", "gpu"])
    err = capsys.readouterr().err
    if HOST_CAN_RUN:
        assert code == 0
    else:
        assert code == 2
        assert "provider 'vllm' (inline::vllm) cannot run here" in err
        assert "remote::vllm" in err
        if importlib.util.find_spec("vllm") is None:
            assert "pip install 'stackray[gpu]'" in err
    assert cli_main(["check", "gpu", "--skip-host-checks"]) == 0
    assert "gpu: ok (inference, safety)" in capsys.readouterr().out


def test_building_the_app_checks_the_host():
    stack, raw = gpu_stack()
    if HOST_CAN_RUN:
        build_app_from_config(stack, raw)
    else:
        with pytest.raises(ConfigError, match="inline::vllm"):
            build_app_from_config(stack, raw)


def test_the_replica_refuses_to_start_without_gpu_or_vllm():
    from stackray.providers.inline.inference.vllm.impl import VLLMInferenceProvider

    context = SimpleNamespace(provider_id="vllm")
    if HOST_CAN_RUN:
        VLLMInferenceProvider(VLLMConfig(), {}, context)
    else:
        with pytest.raises(ConfigError, match="cannot run here"):
            VLLMInferenceProvider(VLLMConfig(), {}, context)


# ---- requests as SamplingParams ---------------------------------------------------------------


def request(**fields: Any) -> GenerationRequest:
    return GenerationRequest(prompt=[1, 2, 3], **fields)


def kwargs(req: GenerationRequest, prompt_tokens: int = 10, context: int = 100) -> dict[str, Any]:
    return sampling.sampling_kwargs(
        req, default_max_tokens=50, context_length=context, prompt_tokens=prompt_tokens
    )


def test_greedy_and_defaults():
    out = kwargs(request())
    assert out == {
        "n": 1,
        "max_tokens": 50,
        "stop": None,
        "repetition_penalty": 1.0,
        "seed": None,
        "skip_special_tokens": True,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": -1,
        "json_schema": None,
        "grammar": None,
    }
    # A temperature of 0 is greedy whatever the strategy.
    zero = kwargs(request(sampling=SamplingConfig(strategy="top_p", temperature=0.0, top_p=0.5)))
    assert (zero["temperature"], zero["top_p"]) == (0.0, 1.0)


def test_sampling_strategies_stop_seed_and_penalty():
    top_p = kwargs(
        request(
            sampling=SamplingConfig(
                strategy="top_p", temperature=0.7, top_p=0.9, seed=3, repetition_penalty=1.2
            ),
            stop=["\n\n", "END"],
            max_tokens=20,
        )
    )
    assert (top_p["temperature"], top_p["top_p"], top_p["top_k"]) == (0.7, 0.9, -1)
    assert (top_p["seed"], top_p["repetition_penalty"]) == (3, 1.2)
    assert top_p["stop"] == ["\n\n", "END"] and top_p["max_tokens"] == 20
    top_k = kwargs(request(sampling=SamplingConfig(strategy="top_k", temperature=1.0, top_k=40)))
    assert (top_k["top_k"], top_k["top_p"]) == (40, 1.0)


def test_max_tokens_stays_in_the_context_and_bad_values_are_400():
    assert kwargs(request(max_tokens=500), prompt_tokens=90, context=100)["max_tokens"] == 10
    with pytest.raises(BadRequestError, match="the prompt has 100 tokens"):
        kwargs(request(), prompt_tokens=100, context=100)
    with pytest.raises(BadRequestError, match="temperature"):
        kwargs(request(sampling=SamplingConfig(strategy="top_p", temperature=-1)))
    with pytest.raises(BadRequestError, match="logprobs"):
        kwargs(request(logprobs_top_k=21))
    assert kwargs(request(logprobs_top_k=3))["logprobs"] == 3


class _Params:
    def __init__(self, **kw: Any) -> None:
        self.kw = kw


def test_json_schemas_become_guided_decoding_in_either_vllm_api():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = kwargs(request(json_schema=schema))
    assert out["json_schema"] == schema
    older = SimpleNamespace(SamplingParams=_Params, GuidedDecodingParams=_Params)
    params = sampling.build_sampling_params(older, out)
    assert params.kw["guided_decoding"].kw == {"json": schema}
    assert "json_schema" not in params.kw and params.kw["max_tokens"] == 50
    newer = SimpleNamespace(SamplingParams=_Params, StructuredOutputsParams=_Params)
    assert sampling.build_sampling_params(newer, out).kw["structured_outputs"].kw == {
        "json": schema
    }
    plain = sampling.build_sampling_params(older, kwargs(request()))
    assert "guided_decoding" not in plain.kw


def test_grammars_become_guided_decoding_in_either_vllm_api():
    out = kwargs(request(grammar='root ::= "safe" | "unsafe"'))
    older = SimpleNamespace(SamplingParams=_Params, GuidedDecodingParams=_Params)
    params = sampling.build_sampling_params(older, out)
    assert params.kw["guided_decoding"].kw == {"grammar": 'root ::= "safe" | "unsafe"'}
    assert "grammar" not in params.kw
    newer = SimpleNamespace(SamplingParams=_Params, StructuredOutputsParams=_Params)
    assert sampling.build_sampling_params(newer, out).kw["structured_outputs"].kw == {
        "grammar": 'root ::= "safe" | "unsafe"'
    }


def test_finish_reasons_and_logprobs():
    assert sampling.finish_reason(None, None) is None
    assert sampling.finish_reason("length", None) == "length"
    assert sampling.finish_reason("stop", "END") == "stop"
    assert sampling.finish_reason("stop", None) == "eos"
    assert sampling.finish_reason("stop", 2) == "eos"  # a stop token id
    entries = [
        {
            5: SimpleNamespace(logprob=-0.1, decoded_token="Hi"),
            6: SimpleNamespace(logprob=-2.5, decoded_token="Yo"),
        }
    ]
    assert sampling.logprob_dicts(entries) == [{"Hi": -0.1, "Yo": -2.5}]


# ---- the engine's stream over vLLM's outputs ---------------------------------------------------


class _Engine:
    """vLLM's `AsyncLLMEngine.generate` contract: cumulative `RequestOutput`s."""

    def __init__(self, steps: list[tuple[str, list[int], str | None, Any]]) -> None:
        self.steps = steps
        self.calls: list[tuple[Any, Any, str]] = []
        self.aborted: list[str] = []

    async def generate(self, prompt: Any, params: Any, request_id: str) -> Any:
        self.calls.append((prompt, params, request_id))
        for text, ids, finish, stop_reason in self.steps:
            await asyncio.sleep(0)
            out = SimpleNamespace(
                text=text,
                token_ids=ids,
                finish_reason=finish,
                stop_reason=stop_reason,
                logprobs=None,
            )
            yield SimpleNamespace(request_id=request_id, outputs=[out], finished=finish is not None)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


def fake_engine(steps: list[tuple[str, list[int], str | None, Any]]) -> VLLMEngine:
    engine = object.__new__(VLLMEngine)
    engine.engine = _Engine(steps)
    engine.config = VLLMConfig(max_tokens=16, max_model_len=64)
    engine.context_length = 64
    engine._sampling_module = SimpleNamespace(SamplingParams=_Params, GuidedDecodingParams=_Params)
    return engine


def test_engine_streams_deltas_of_the_cumulative_outputs():
    engine = fake_engine(
        [
            ("Hel", [10], None, None),
            ("Hello", [10, 11], None, None),
            ("Hello!", [10, 11, 12], "stop", None),
        ]
    )

    async def run() -> list[Any]:
        return [c async for c in engine.generate(request(stop=["\n"]))]

    chunks = asyncio.run(run())
    assert [c.text for c in chunks] == ["Hel", "lo", "!"]
    assert [c.token_ids for c in chunks] == [[10], [11], [12]]
    assert [c.finish_reason for c in chunks] == [None, None, "eos"]
    assert chunks[-1].prompt_tokens == 3 and chunks[-1].completion_tokens == 3
    prompt, params, _ = engine.engine.calls[0]
    assert prompt == {"prompt_token_ids": [1, 2, 3]}
    assert params.kw["stop"] == ["\n"] and params.kw["max_tokens"] == 16
    assert engine.engine.aborted == []


def test_closing_the_stream_early_aborts_the_request():
    engine = fake_engine(
        [("a", [1], None, None), ("ab", [1, 2], None, None), ("abc", [1, 2, 3], "length", None)]
    )

    async def run() -> None:
        stream = engine.generate(request())
        assert (await stream.__anext__()).text == "a"
        await stream.aclose()

    asyncio.run(run())
    assert engine.engine.aborted == [engine.engine.calls[0][2]]


# ---- the real engine -----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.vllm
def test_real_vllm_engine_chat_tools_and_json(tmp_path):
    """vLLM on a CUDA GPU through the provider: chat, streaming, a JSON response format."""
    from stackray.api.inference import ChatCompletionRequest
    from stackray.providers.inline.inference.vllm.impl import VLLMInferenceProvider

    model = os.environ.get("STACKRAY_VLLM_TEST_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct")
    config = VLLMConfig(max_model_len=1024, gpu_memory_utilization=0.3, enforce_eager=True)
    provider = VLLMInferenceProvider(config, {}, SimpleNamespace(provider_id="vllm"))

    async def run() -> None:
        chat = ChatCompletionRequest.model_validate(
            {
                "model_id": model,
                "messages": [{"role": "user", "content": "Say hello."}],
                "sampling_params": {"max_tokens": 16},
            }
        )
        answer = await provider.chat_completion(chat)
        assert answer.completion_message.content.strip()
        streamed = [c async for c in provider.chat_completion_stream(chat)]
        assert streamed[-1].event.event_type == "complete"
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        shaped = ChatCompletionRequest.model_validate(
            {
                **chat.model_dump(exclude_none=True),
                "response_format": {"type": "json_schema", "json_schema": schema},
            }
        )
        import json

        assert isinstance(
            json.loads((await provider.chat_completion(shaped)).completion_message.content)["n"],
            int,
        )
        for engine in provider._engines.values():
            engine.shutdown()

    asyncio.run(run())
