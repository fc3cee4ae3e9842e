"""The safety router, the shields API, Llama Guard and moderations, through the gateway
with the real clients (`llama-stack-client`, `openai`) over an in-process stack.

The Llama Guard shield is backed by `remote::vllm` pointed at a guard model on 127.0.0.1
whose answers the test sets (`guard_server`), so the prompt, the category exclusion and
the parsing are seen on the wire; the code-scanner shield runs Meta's CodeShield for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import llama_stack_client
import openai
import pytest
from llama_stack_client import LlamaStackClient

from stackray.api.errors import ConfigError
from stackray.deployments.gateway import create_gateway_app
from stackray.providers.inline.safety.llama_guard.categories import CATEGORIES
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.guard_server import GUARD_MODEL, guard_app
from tests.unit.support.remote_servers import Failure, FakeService


@pytest.fixture(scope="module")
def _guard_service() -> Iterator[FakeService]:
    service = FakeService(guard_app).start()
    yield service
    service.stop()


@pytest.fixture()
def guard(_guard_service: FakeService) -> FakeService:
    _guard_service.requests.clear()
    _guard_service.failures.clear()
    _guard_service.answers.clear()  # type: ignore[attr-defined]
    return _guard_service


def stack_config(guard: FakeService, data_dir: Any, **llama_guard: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "safety-test",
        "apis": ["inference", "safety"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{guard.url}/v1", "retry_backoff_s": 0.01},
                }
            ],
            "safety": [
                {
                    "provider_id": "llama-guard",
                    "provider_type": "inline::llama-guard",
                    "config": {"excluded_categories": ["S5"], **llama_guard},
                },
                {"provider_id": "code-scanner", "provider_type": "inline::code-scanner"},
            ],
        },
        "models": [{"model_id": "guard", "provider_id": "vllm", "provider_model_id": GUARD_MODEL}],
        "shields": [
            {
                "shield_id": "llama-guard",
                "provider_id": "llama-guard",
                "provider_shield_id": "guard",
                "params": {"excluded_categories": ["S13"]},
            },
            {"shield_id": "code-scanner", "provider_id": "code-scanner"},
        ],
        "storage": {"data_dir": str(data_dir)},
    }


class Clients:
    """The gateway of an in-process stack on 127.0.0.1, and the clients that talk to it."""

    def __init__(self, stack: Any, routers: dict[str, Any]) -> None:
        self.server = FakeService(lambda _: create_gateway_app(stack, routers)).start()
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.llama = LlamaStackClient(base_url=self.url, max_retries=0, timeout=60)
        self.openai = openai.OpenAI(
            base_url=self.url + "/v1/openai/v1", api_key="x", max_retries=0, timeout=60
        )

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.http.close()
        self.server.stop()


def start(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    stack = parse_config(config)
    return stack, asyncio.run(build_local_stack(stack))


def serve(config: dict[str, Any]) -> Clients:
    return Clients(*start(config))


@pytest.fixture()
def clients(guard: FakeService, tmp_path) -> Iterator[Clients]:
    with serve(stack_config(guard, tmp_path)) as c:
        yield c


def prompt_of(guard: FakeService) -> str:
    last = guard.requests[-1]
    assert last.path == "/v1/chat/completions"
    [message] = last.body["messages"]
    assert message["role"] == "user"
    return str(message["content"])


def run(clients: Clients, messages: list[dict[str, Any]], shield: str = "llama-guard") -> Any:
    return clients.llama.safety.run_shield(shield_id=shield, messages=messages, params={})


# ---- Llama Guard ------------------------------------------------------------------------


def test_safe_conversation_has_no_violation_and_the_prompt_is_llama_guards(clients, guard):
    result = run(clients, [{"role": "user", "content": "What is the capital of France?"}])
    assert result.violation is None
    prompt = prompt_of(guard)
    assert prompt.startswith(
        "Task: Check if there is unsafe content in 'User' messages in conversations"
    )
    assert "User: What is the capital of France?" in prompt
    assert "ONLY THE LAST User message" in prompt
    # Every category but the excluded ones: S5 (provider config) and S13 (shield params).
    for code, name in CATEGORIES.items():
        assert (f"{code}: {name}." in prompt) == (code not in ("S5", "S13")), code
    # The verdict is asked greedily, short.
    body = guard.requests[-1].body
    assert body["model"] == GUARD_MODEL
    assert body["max_tokens"] == 20


def test_unsafe_verdict_is_a_violation_with_its_categories(clients, guard):
    guard.answers.append("unsafe\nS1,S10")
    result = run(clients, [{"role": "user", "content": "Help me hurt people of group X"}])
    v = result.violation
    assert v is not None and v.violation_level == "error"
    assert v.metadata["violation_type"] == "S1,S10"
    assert v.metadata["categories"] == [
        {"code": "S1", "name": "Violent Crimes"},
        {"code": "S10", "name": "Hate"},
    ]
    assert "S1: Violent Crimes" in v.user_message and "S10: Hate" in v.user_message


def test_excluded_categories_in_an_answer_are_ignored(clients, guard):
    guard.answers.extend(["unsafe\nS5", "unsafe\nS13,S5", "unsafe\nS13,S2"])
    messages = [{"role": "user", "content": "text"}]
    assert run(clients, messages).violation is None
    assert run(clients, messages).violation is None
    v = run(clients, messages).violation
    assert v is not None and v.metadata["violation_type"] == "S2"


def test_request_params_exclude_more_categories(clients, guard):
    guard.answers.append("unsafe\nS2")
    result = clients.llama.safety.run_shield(
        shield_id="llama-guard",
        messages=[{"role": "user", "content": "text"}],
        params={"excluded_categories": ["S2"]},
    )
    assert result.violation is None
    assert "S2: Non-Violent Crimes." not in prompt_of(guard)


def test_the_last_message_decides_the_judged_role_and_system_prompts_are_left_out(clients, guard):
    run(
        clients,
        [
            {"role": "system", "content": "You are a secret system prompt."},
            {"role": "user", "content": "Tell me a story"},
            {"role": "assistant", "content": "Once upon a time", "stop_reason": "end_of_turn"},
        ],
    )
    prompt = prompt_of(guard)
    assert "'Agent' messages" in prompt and "ONLY THE LAST Agent message" in prompt
    assert "User: Tell me a story\n\nAgent: Once upon a time" in prompt
    assert "secret system prompt" not in prompt


def test_an_answer_that_is_no_verdict_is_an_error_not_a_pass(clients, guard):
    for answer, why in (
        ("I think this is fine.", "neither 'safe' nor 'unsafe'"),
        ("unsafe\nviolence", "unknown category 'violence'"),
        ("unsafe\nS99", "unknown category 'S99'"),
        ("", "neither 'safe' nor 'unsafe'"),
    ):
        guard.answers.append(answer)
        r = clients.http.post(
            "/v1/safety/run-shield",
            json={
                "shield_id": "llama-guard",
                "messages": [{"role": "user", "content": "text"}],
                "params": {},
            },
        )
        assert r.status_code == 502, r.text
        message = r.json()["error"]["message"]
        assert "cannot parse the verdict of guard model 'guard'" in message
        assert why in message and f"it answered {answer!r}" in message
    # The same through the client: an error, never a silent pass.
    guard.answers.append("maybe")
    with pytest.raises(llama_stack_client.APIStatusError) as e:
        run(clients, [{"role": "user", "content": "text"}])
    assert e.value.status_code == 502


def test_unsafe_without_categories_is_still_a_violation(clients, guard):
    guard.answers.append("unsafe")
    v = run(clients, [{"role": "user", "content": "text"}]).violation
    assert v is not None and v.metadata["violation_type"] == ""


def test_completion_prompt_format_sends_the_raw_prompt(guard, tmp_path):
    guard.answers.append("unsafe\nS9")
    with serve(stack_config(guard, tmp_path, prompt_format="completion")) as c:
        result = c.llama.safety.run_shield(
            shield_id="llama-guard", messages=[{"role": "user", "content": "boom"}], params={}
        )
    assert result.violation is not None and result.violation.metadata["violation_type"] == "S9"
    last = guard.requests[-1]
    assert last.path == "/v1/completions"
    assert last.body["prompt"].startswith("<|start_header_id|>user<|end_header_id|>\n\nTask:")
    assert last.body["prompt"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_guard_model_must_be_a_registered_llm(clients):
    with pytest.raises(llama_stack_client.BadRequestError) as e:
        clients.llama.shields.register(
            shield_id="lg2", provider_id="llama-guard", provider_shield_id="no-such-model"
        )
    assert "'no-such-model' is not registered" in e.value.message
    with pytest.raises(llama_stack_client.BadRequestError) as e:
        clients.llama.shields.register(
            shield_id="lg3",
            provider_id="llama-guard",
            provider_shield_id="guard",
            params={"excluded_categories": ["S42"]},
        )
    assert "unknown Llama Guard category 'S42'" in e.value.message


def test_unknown_excluded_category_in_config_is_a_config_error(guard, tmp_path):
    with pytest.raises(ConfigError, match="unknown Llama Guard category 'S15'"):
        parse_config(stack_config(guard, tmp_path, excluded_categories=["S15"]))


# ---- shields API ------------------------------------------------------------------------


def test_shields_from_the_run_config_are_listed(clients):
    shields = {s.identifier: s for s in clients.llama.shields.list()}
    assert set(shields) == {"llama-guard", "code-scanner"}
    assert shields["llama-guard"].provider_id == "llama-guard"
    assert shields["llama-guard"].provider_resource_id == "guard"
    assert shields["llama-guard"].params == {"excluded_categories": ["S13"]}
    assert shields["code-scanner"].type == "shield"
    got = clients.llama.shields.retrieve("code-scanner")
    assert got.identifier == "code-scanner" and got.provider_resource_id == "code-scanner"


def test_register_get_delete_and_restart(guard, tmp_path):
    with serve(stack_config(guard, tmp_path)) as c:
        made = c.llama.shields.register(shield_id="scan-2", provider_id="code-scanner")
        assert made.identifier == "scan-2" and made.provider_id == "code-scanner"
        # Registering the same shield again is fine; another one under the id conflicts.
        again = c.llama.shields.register(shield_id="scan-2", provider_id="code-scanner")
        assert again.identifier == "scan-2"
        with pytest.raises(llama_stack_client.ConflictError):
            c.llama.shields.register(
                shield_id="scan-2", provider_id="llama-guard", provider_shield_id="guard"
            )
        # Several providers: provider_id is required, and must exist.
        with pytest.raises(llama_stack_client.BadRequestError) as e:
            c.llama.shields.register(shield_id="scan-3")
        assert "provider_id is required" in e.value.message
        with pytest.raises(llama_stack_client.BadRequestError) as e:
            c.llama.shields.register(shield_id="scan-3", provider_id="nope")
        assert "no safety provider 'nope'" in e.value.message
    # A restart with the same config keeps what was registered.
    with serve(stack_config(guard, tmp_path)) as c:
        assert c.llama.shields.retrieve("scan-2").provider_id == "code-scanner"
        r = c.http.delete("/v1/shields/scan-2")
        assert r.status_code == 200, r.text
        assert {s.identifier for s in c.llama.shields.list()} == {"llama-guard", "code-scanner"}
        r = c.http.delete("/v1/shields/scan-2")
        assert r.status_code == 404 and "shield 'scan-2' not found" in r.text


def test_unknown_shield_is_404_naming_it(clients):
    with pytest.raises(llama_stack_client.NotFoundError) as e:
        run(clients, [{"role": "user", "content": "x"}], shield="no-such-shield")
    assert "shield 'no-such-shield' not found" in e.value.message
    with pytest.raises(llama_stack_client.NotFoundError) as e:
        clients.llama.shields.retrieve("no-such-shield")
    assert "no-such-shield" in e.value.message
    r = clients.http.post(
        "/v1/safety/run-shield",
        json={"shield_id": "nope", "messages": [{"role": "user", "content": "x"}], "params": {}},
    )
    assert r.status_code == 404 and "shield 'nope' not found" in r.text


def test_empty_messages_is_400(clients):
    r = clients.http.post(
        "/v1/safety/run-shield",
        json={"shield_id": "llama-guard", "messages": [], "params": {}},
    )
    assert r.status_code == 400 and "messages" in r.text


# ---- moderations ------------------------------------------------------------------------


def test_moderations_map_llama_guard_categories(clients, guard):
    guard.answers.extend(["safe", "unsafe\nS1,S10", "unsafe\nS7"])
    result = clients.openai.moderations.create(
        model="llama-guard", input=["hello", "violent hate", "where does she live"]
    )
    assert result.model == "llama-guard" and result.id.startswith("modr-")
    ok, bad, private = result.results
    assert ok.flagged is False and not any(ok.categories.model_dump().values())
    assert bad.flagged is True
    assert bad.categories.violence and bad.categories.hate
    assert bad.categories.illicit_violent
    assert not bad.categories.sexual and not bad.categories.self_harm
    assert bad.category_scores.violence == 1.0 and bad.category_scores.sexual == 0.0
    assert bad.category_applied_input_types.violence == ["text"]
    # Llama Guard categories without an OpenAI counterpart keep their own name.
    assert private.flagged and private.model_dump()["categories"]["privacy"] is True
    # Every input was judged alone, as the last user message.
    prompts = [r.body["messages"][0]["content"] for r in guard.requests[-3:]]
    assert [p.count("\n\nUser: ") for p in prompts] == [1, 1, 1]


def test_moderations_under_v1_and_with_the_code_scanner(clients):
    client = openai.OpenAI(base_url=clients.url + "/v1", api_key="x", max_retries=0)
    result = client.moderations.create(
        model="code-scanner",
        input=["import pickle\ndata = pickle.loads(blob)\n", "def add(a, b):\n    return a + b\n"],
    )
    insecure, fine = result.results
    assert insecure.flagged and insecure.model_dump()["categories"]["insecure_code"] is True
    assert not fine.flagged


def test_moderations_unknown_or_missing_model(clients):
    with pytest.raises(openai.NotFoundError) as e:
        clients.openai.moderations.create(model="nope", input="x")
    assert "shield 'nope' not found" in str(e.value)
    r = clients.http.post("/v1/openai/v1/moderations", json={"input": "x"})
    assert r.status_code == 400 and "model (the shield to run) is required" in r.text
    r = clients.http.post("/v1/moderations", json={"input": [], "model": "llama-guard"})
    assert r.status_code == 400 and "input" in r.text


def test_a_failing_guard_model_is_an_error_not_a_pass(guard, tmp_path):
    stack, routers = start(stack_config(guard, tmp_path))
    guard.fail(Failure(status=500, body={"error": {"message": "engine died"}}))
    with Clients(stack, routers) as c:
        r = c.http.post(
            "/v1/safety/run-shield",
            json={
                "shield_id": "llama-guard",
                "messages": [{"role": "user", "content": "x"}],
                "params": {},
            },
        )
    assert r.status_code == 502, r.text
    assert "engine died" in r.text


def test_a_stack_without_the_inference_api_cannot_run_llama_guard(guard, tmp_path):
    config = stack_config(guard, tmp_path)
    config["apis"] = ["safety"]
    with pytest.raises(ConfigError, match="needs API\\(s\\) inference"):
        parse_config(config)
