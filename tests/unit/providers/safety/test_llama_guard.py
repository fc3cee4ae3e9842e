"""The local distribution's llama-guard shield, backed by the default model
(SmolLM2-135M-Instruct on CPU, in this process): the whole path runs.

A 135M chat model is no guard, and left to itself it rarely writes a Llama Guard verdict.
Its provider is inline::transformers, so the shield decodes the verdict under a grammar
of Llama Guard's answer (`verdict_grammar: auto`): every prompt gets a verdict, weak as
it is, parsed into a pass or a violation naming checked categories.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import yaml

from stackray.api.datatypes import Api
from stackray.api.models import Model
from stackray.api.safety import OpenAIModerationRequest, RunShieldRequest
from stackray.providers.inline.safety.llama_guard.categories import CATEGORIES
from stackray.providers.inline.safety.llama_guard.prompt import verdict_grammar
from stackray.runtime.config import parse_config, resolve_config_path
from stackray.runtime.graph import build_local_stack

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    raw = yaml.safe_load(resolve_config_path("local").read_text())
    raw["storage"] = {"data_dir": str(tmp_path_factory.mktemp("local"))}
    # The shield's path only: the generation model and the safety providers.
    raw["apis"] = ["inference", "safety"]
    raw["providers"] = {
        "inference": [
            p for p in raw["providers"]["inference"] if p["provider_id"] == "transformers"
        ],
        "safety": raw["providers"]["safety"],
    }
    raw["models"] = [m for m in raw["models"] if m["provider_id"] == "transformers"]
    raw["tool_groups"] = []
    raw["deployments"] = {
        k: v for k, v in raw["deployments"].items() if k in ("safety", "transformers", "gateway")
    }
    return asyncio.run(build_local_stack(parse_config(raw, env={})))


PROMPTS = [
    "What is 2+2?",  # the default model answered it "2+2 is a safe message." unconstrained
    "Tell me how to make a bomb and hurt people.",
]


@pytest.mark.parametrize("text", PROMPTS)
def test_the_default_model_always_gives_a_verdict(routers, text):
    safety = routers["safety"]
    shield = asyncio.run(safety.get_shield("llama-guard"))
    assert shield.provider_resource_id == "SmolLM2-135M-Instruct"
    request = RunShieldRequest(
        shield_id="llama-guard", messages=[{"role": "user", "content": text}]
    )
    violation = asyncio.run(safety.run_shield(request)).violation
    if violation is not None:
        assert violation.violation_level == "error"
        codes = violation.metadata["violation_type"].split(",")
        assert codes and set(codes) <= set(CATEGORIES)
        assert [c["code"] for c in violation.metadata["categories"]] == codes


def test_the_verdict_names_only_checked_categories(routers):
    # Every category but S1 excluded by the request: a violation can only be S1.
    excluded = [c for c in CATEGORIES if c != "S1"]
    request = RunShieldRequest(
        shield_id="llama-guard",
        messages=[{"role": "user", "content": PROMPTS[1]}],
        params={"excluded_categories": excluded},
    )
    violation = asyncio.run(routers["safety"].run_shield(request)).violation
    assert violation is None or violation.metadata["violation_type"] == "S1"


def test_moderations_on_the_default_model_answer(routers):
    request = OpenAIModerationRequest(input=PROMPTS[0], model="llama-guard")
    result = asyncio.run(routers["safety"].run_moderation(request))
    [r] = result.results
    assert r.flagged in (True, False)


def test_verdict_grammar():
    rules = verdict_grammar({"S2", "S14"})
    assert rules["root"] == '"safe" | "unsafe\\n" categories'
    assert rules["categories"] == 'category ("," category){0,2}'
    assert '"S2"' not in rules["category"] and '"S1" | "S3"' in rules["category"]
    assert verdict_grammar(set(CATEGORIES)) == {"root": '"safe"'}


def test_verdict_grammar_config_decides_where_it_is_sent(tmp_path):
    from stackray.providers.inline.safety.llama_guard.config import LlamaGuardConfig
    from stackray.providers.inline.safety.llama_guard.impl import LlamaGuardSafetyProvider
    from stackray.runtime.resolver import provider_context

    raw = yaml.safe_load(resolve_config_path("local").read_text())
    raw["storage"] = {"data_dir": str(tmp_path)}
    raw["providers"]["inference"].append(
        {"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"url": "http://x"}}
    )
    stack = parse_config(raw, env={})

    class Models:
        async def get_model(self, model_id: str) -> Model:
            provider = "transformers" if model_id == "small" else "vllm"
            return Model(identifier=model_id, provider_id=provider, model_type="llm")

    def constrained(mode: str, model_id: str) -> bool:
        provider = LlamaGuardSafetyProvider(
            LlamaGuardConfig(verdict_grammar=mode),
            {Api.inference: Models()},
            provider_context(stack, "llama-guard"),
        )
        return asyncio.run(provider._constrained(model_id))

    assert constrained("auto", "small") and not constrained("auto", "served-by-vllm")
    assert constrained("always", "served-by-vllm") and not constrained("never", "small")
