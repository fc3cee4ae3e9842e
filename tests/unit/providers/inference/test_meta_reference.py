"""`inline::meta-reference` inference: Llama Stack 0.2.12's config (in its template's form)
on the transformers engine, with the real SmolLM2-135M-Instruct weights given as
`checkpoint_dir` for a model named as a Llama model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, ConfigError
from stackray.api.inference import ChatCompletionRequest
from stackray.api.models import Model
from stackray.providers.inline.inference.meta_reference.config import MetaReferenceInferenceConfig
from stackray.providers.inline.inference.meta_reference.impl import MetaReferenceInferenceProvider
from stackray.providers.inline.inference.transformers.loader import resolve_model_source
from stackray.runtime.config import parse_config

LLAMA = "meta-llama/Llama-3.2-3B-Instruct"


def template_config(env: dict[str, str]) -> dict:
    """The provider entry as Llama Stack 0.2.12's meta-reference-gpu template writes it."""
    return {
        "version": "2",
        "image_name": "meta-reference-gpu",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "meta-reference-inference",
                    "provider_type": "inline::meta-reference",
                    "config": {
                        "model": "${env.INFERENCE_MODEL}",
                        "checkpoint_dir": "${env.INFERENCE_CHECKPOINT_DIR:null}",
                        "quantization": {"type": "${env.QUANTIZATION_TYPE:bf16}"},
                        "model_parallel_size": "${env.MODEL_PARALLEL_SIZE:0}",
                        "max_batch_size": "${env.MAX_BATCH_SIZE:1}",
                        "max_seq_len": "${env.MAX_SEQ_LEN:4096}",
                    },
                }
            ]
        },
        "models": [
            {"model_id": "${env.INFERENCE_MODEL}", "provider_id": "meta-reference-inference"}
        ],
    }


def test_the_template_form_parses_with_0_2_12_values():
    stack = parse_config(template_config({}), env={"INFERENCE_MODEL": LLAMA})
    provider = stack.providers_of(Api.inference)[0]
    config = MetaReferenceInferenceConfig.model_validate(provider.config)
    assert (config.model, config.checkpoint_dir, config.quantization.type) == (LLAMA, None, "bf16")
    assert (config.max_batch_size, config.max_seq_len, config.model_parallel_size) == (1, 4096, 0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"QUANTIZATION_TYPE": "fp8_mixed"},
            r"config\.quantization: Value error, type 'fp8_mixed'",
        ),
        (
            {"QUANTIZATION_TYPE": "int4_mixed"},
            r"config\.quantization: Value error, type 'int4_mixed'",
        ),
        ({"MODEL_PARALLEL_SIZE": "2"}, r"config\.model_parallel_size.*inline::vllm"),
    ],
)
def test_what_this_engine_cannot_do_is_refused_naming_the_field(env, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(template_config(env), env={"INFERENCE_MODEL": LLAMA, **env})


def test_a_model_is_served_from_checkpoint_dir_within_max_seq_len(tmp_path: Path):
    weights = resolve_model_source("HuggingFaceTB/SmolLM2-135M-Instruct").path
    config = MetaReferenceInferenceConfig(
        model=LLAMA, checkpoint_dir=str(weights), max_seq_len=96, torch_seed=0, device="cpu"
    )
    provider = MetaReferenceInferenceProvider(
        config, {}, SimpleNamespace(provider_id="meta-reference-inference", data_dir=tmp_path)
    )

    async def main() -> None:
        model = await provider.register_model(
            Model(
                identifier=LLAMA, provider_id="meta-reference-inference", provider_resource_id=LLAMA
            )
        )
        assert model.metadata["context_length"] == 96
        answer = await provider.chat_completion(
            ChatCompletionRequest(
                model_id=LLAMA,
                messages=[{"role": "user", "content": "Say hi."}],
                sampling_params={"max_tokens": 8},
            )
        )
        assert answer.completion_message.content.strip()
        with pytest.raises(BadRequestError, match="context length .* is 96 tokens"):
            await provider.chat_completion(
                ChatCompletionRequest(
                    model_id=LLAMA, messages=[{"role": "user", "content": "word " * 200}]
                )
            )

    try:
        asyncio.run(main())
    finally:
        for engine in provider._engines.values():
            engine.shutdown()
