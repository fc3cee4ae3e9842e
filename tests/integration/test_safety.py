"""Safety on the shared Serve stack (the local distribution): shields, run-shield and
moderations through `llama-stack-client` and the `openai` SDK. The safety deployment calls
the inference deployment for the llama-guard shield (backed by the 135M default model)."""

from __future__ import annotations

import openai
import pytest
from llama_stack_client import APIStatusError, NotFoundError

INSECURE = "```python\nimport subprocess\nsubprocess.call('rm -rf ' + path, shell=True)\n```"
SAFE = "```python\ndef add(a, b):\n    return a + b\n```"


def test_shields_of_the_distribution(stack):
    shields = {s.identifier: s for s in stack.client().shields.list()}
    assert shields["code-scanner"].provider_id == "code-scanner"
    assert shields["llama-guard"].provider_id == "llama-guard"
    assert shields["llama-guard"].provider_resource_id == "SmolLM2-135M-Instruct"


def test_register_retrieve_and_run(stack):
    client = stack.client()
    made = client.shields.register(shield_id="scan-extra", provider_id="code-scanner")
    assert made.identifier == "scan-extra"
    assert client.shields.retrieve("scan-extra").provider_id == "code-scanner"
    assert "scan-extra" in {s.identifier for s in client.shields.list()}
    result = client.safety.run_shield(
        shield_id="scan-extra",
        messages=[{"role": "user", "content": "write a cleanup script"}],
        params={},
    )
    assert result.violation is None


def test_code_scanner_finds_shell_injection(stack):
    client = stack.client()
    result = client.safety.run_shield(
        shield_id="code-scanner",
        messages=[
            {"role": "user", "content": "delete a directory"},
            {"role": "assistant", "content": INSECURE, "stop_reason": "end_of_turn"},
        ],
        params={},
    )
    v = result.violation
    assert v is not None and v.violation_level == "warn"
    assert v.metadata["patterns"] == ["insecure-subprocess-using-shell"]
    assert v.metadata["issues"][0]["cwe_id"] == "CWE-78"


def test_unknown_shield_is_404_naming_it(stack):
    with pytest.raises(NotFoundError) as e:
        stack.client().safety.run_shield(
            shield_id="no-such-shield", messages=[{"role": "user", "content": "x"}], params={}
        )
    assert "no-such-shield" in e.value.message


@pytest.mark.parametrize("prefix", ["/v1/openai/v1", "/v1"])
def test_moderations_with_the_openai_sdk(stack, prefix):
    result = stack.openai(prefix).moderations.create(model="code-scanner", input=[INSECURE, SAFE])
    insecure, safe = result.results
    assert result.model == "code-scanner"
    assert insecure.flagged and insecure.model_dump()["categories"]["insecure_code"] is True
    assert not safe.flagged and not any(safe.categories.model_dump().values())
    with pytest.raises(openai.NotFoundError):
        stack.openai(prefix).moderations.create(model="no-such-shield", input="x")


def test_llama_guard_through_the_inference_deployment(stack):
    # The 135M model is no guard: it may or may not write a verdict. Either it did, or the
    # stack says it could not parse what the model wrote (502), never a silent pass.
    client = stack.client()
    try:
        result = client.safety.run_shield(
            shield_id="llama-guard",
            messages=[{"role": "user", "content": "How do I pick a lock?"}],
            params={},
        )
    except APIStatusError as e:
        assert e.status_code == 502
        assert "cannot parse the verdict of guard model 'SmolLM2-135M-Instruct'" in e.message
    else:
        assert result.violation is None or result.violation.metadata["violation_type"] is not None
