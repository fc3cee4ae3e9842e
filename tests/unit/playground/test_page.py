"""The playground in a real headless Chromium against a real gateway.

The gateway is `create_gateway_app` over an in-process stack (`build_local_stack`: the
external echo model, the scripted tool-calling model behind `remote::vllm`, faiss, localfs
files, the RAG tool, agents, telemetry to SQLite), served by uvicorn on a free loopback
port; Playwright drives Debian's Chromium. Each test
saves a screenshot of its tab under its tmp_path and checks it is not blank.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime import telemetry
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.browser import chromium, colours
from tests.unit.support.remote_servers import FakeService
from tests.unit.support.scripted_model import Reply, ScriptedModel

pytestmark = pytest.mark.timeout(90)

# Playwright's own waits, in milliseconds: every step here takes well under a second.
WAIT_MS = 10_000
LOAD_BUDGET_MS = 300


def stack_config(data_dir: Path, scripted_url: str) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "playground",
        "apis": ["inference", "vector_io", "files", "tool_runtime", "agents", "telemetry"],
        "providers": {
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"},
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{scripted_url}/v1", "retry_backoff_s": 0.01},
                },
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
            "files": [{"provider_id": "localfs", "provider_type": "inline::localfs"}],
            "tool_runtime": [{"provider_id": "rag", "provider_type": "inline::rag-runtime"}],
            "agents": [{"provider_id": "meta", "provider_type": "inline::meta-reference"}],
            "telemetry": [
                {
                    "provider_id": "meta",
                    "provider_type": "inline::meta-reference",
                    "config": {"export_interval_ms": 10},
                }
            ],
        },
        "models": [
            {"model_id": "echo-model", "provider_id": "echo"},
            {"model_id": "scripted", "provider_id": "vllm"},
            {
                "model_id": "echo-embedding",
                "provider_id": "echo",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 8},
            },
        ],
        "tool_groups": [{"toolgroup_id": "builtin::rag", "provider_id": "rag"}],
        "storage": {"data_dir": str(data_dir)},
    }


@pytest.fixture(scope="module")
def _scripted() -> Iterator[ScriptedModel]:
    model = ScriptedModel().start()
    yield model
    model.stop()


@pytest.fixture()
def scripted(_scripted: ScriptedModel) -> ScriptedModel:
    return _scripted.reset()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, _scripted: ScriptedModel) -> Iterator[str]:
    stack = parse_config(stack_config(tmp_path_factory.mktemp("stack"), _scripted.url))
    telemetry.configure(stack, "gateway")
    routers = asyncio.run(build_local_stack(stack))
    app = create_gateway_app(stack, routers)
    server = FakeService(lambda _: app).start()
    try:
        yield server.url
    finally:
        server.stop()
        telemetry.shutdown()


@pytest.fixture(scope="module")
def browser(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # After the stack is built: Playwright's sync API keeps an event loop running in this
    # thread, where asyncio.run (build_local_stack) could not run.
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        context.set_default_timeout(WAIT_MS)
        yield context


@pytest.fixture()
def page(browser: Any, base_url: str) -> Iterator[Any]:
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    try:
        yield page
    finally:
        page.close()


def open_tab(page: Any, base_url: str, tab: str) -> None:
    page.goto(f"{base_url}/playground#{tab}")
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_attribute(f"#tab-{tab}", "aria-selected") == "true"


def screenshot(page: Any, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    # A page of text, bars and borders: anti-aliased text alone gives dozens of colours.
    assert colours(path) > 20, f"{path} looks blank"
    return path


def test_page_loads_within_budget_from_the_gateway_alone(page, base_url, tmp_path):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    loads = []
    for _ in range(3):
        page.goto(f"{base_url}/playground", wait_until="load")
        page.wait_for_selector("body[data-ready=true]")
        # Navigation start to the load event: the HTML, the stylesheet and the module.
        loads.append(
            page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return n.loadEventEnd - n.startTime; }"
            )
        )
    assets = page.evaluate(
        "() => performance.getEntriesByType('resource').map(r => r.name)"
        ".filter(n => n.includes('/playground/'))"
    )
    print(f"\nplayground load (navigation start to load event), 3 loads: {loads} ms")
    assert statistics.median(loads) <= LOAD_BUDGET_MS, loads
    assert sorted(a.rsplit("/", 1)[1] for a in assets) == ["playground.css", "playground.js"]
    assert requested and all(url.startswith(base_url) for url in requested), requested
    shown = page.eval_on_selector_all('[role="tab"]:not([hidden])', "tabs => tabs.map(t => t.id)")
    assert shown == ["tab-chat", "tab-rag", "tab-agents", "tab-traces", "tab-cluster"]
    # The tab list is keyboard-usable: arrow keys move the selection.
    page.focus("#tab-chat")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tab-rag", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "tab-rag"
    page.keyboard.press("End")
    assert page.get_attribute("#tab-cluster", "aria-selected") == "true"


def test_only_the_tabs_of_served_apis_appear(browser, tmp_path):
    # A stack serving inference alone: chat and the cluster view, nothing else (the
    # routes of the other APIs are declared but answer 404 here).
    raw = {
        "version": 2,
        "image_name": "chat-only",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
            ]
        },
        "models": [{"model_id": "echo-model", "provider_id": "echo"}],
        "storage": {"data_dir": str(tmp_path)},
    }
    stack = parse_config(raw)
    # Playwright's event loop runs in this thread: build the stack in another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        routers = pool.submit(asyncio.run, build_local_stack(stack)).result()
    app = create_gateway_app(stack, routers)
    server = FakeService(lambda _: app).start()
    page = browser.new_page()
    try:
        page.goto(f"{server.url}/playground#traces")
        page.wait_for_selector("body[data-ready=true]")
        shown = page.eval_on_selector_all(
            '[role="tab"]:not([hidden])', "tabs => tabs.map(t => t.id)"
        )
        assert shown == ["tab-chat", "tab-cluster"]
        assert page.get_attribute("#tab-chat", "aria-selected") == "true"
    finally:
        page.close()
        server.stop()


def test_chat_streams_the_answer_into_the_page(page, base_url, tmp_path):
    open_tab(page, base_url, "chat")
    assert page.input_value("#chat-model") == "echo-model"
    page.fill("#chat-system", "Answer briefly.")
    # Count the answer's text updates: one per streamed chunk, not one at the end.
    page.evaluate(
        """() => { window.updates = 0; new MutationObserver(() => window.updates++)
        .observe(document.getElementById('chat-log'),
                 {subtree: true, childList: true, characterData: true}); }"""
    )
    page.fill("#chat-input", "tell me four words")
    page.press("#chat-input", "Control+Enter")
    answer = page.locator(".msg.assistant .answer")
    answer.filter(has_text="echo: tell me four words").wait_for()
    stats = page.locator(".msg.assistant .stats")
    stats.filter(has_text="total").wait_for()
    assert "first token" in stats.inner_text()
    assert "5 streamed chunks" in stats.inner_text()
    assert page.evaluate("window.updates") >= 5  # 5 chunks of text, then the stats line
    screenshot(page, tmp_path / "chat.png")


def test_chat_shows_token_counts_and_tool_calls(page, base_url, scripted):
    scripted.play(Reply(text="let me look", tool_calls=[("get_weather", {"city": "Oslo"})]))
    open_tab(page, base_url, "chat")
    page.select_option("#chat-model", "scripted")
    page.fill("#chat-input", "weather in Oslo?")
    page.click("#chat-submit")
    page.locator(".msg.assistant .stats", has_text="total").wait_for()
    assert page.inner_text(".msg.assistant .answer") == "let me look"
    assert (
        page.inner_text(".msg.assistant .tool-call") == 'tool call: get_weather({"city": "Oslo"})'
    )
    stats = page.inner_text(".msg.assistant .stats")
    assert "3 prompt + 4 completion tokens" in stats and "tool_calls" in stats
    assert scripted.chats[-1]["stream"] is True


def test_chat_shows_the_stacks_error_message(page, base_url):
    # The echo provider fails on this message: the gateway answers 502 with its detail.
    open_tab(page, base_url, "chat")
    page.fill("#chat-input", "__fail__")
    page.click("#chat-submit")
    page.wait_for_selector("#chat-error:not([hidden])")
    body = {"model": "echo-model", "messages": [{"role": "user", "content": "__fail__"}]}
    expected = httpx.post(f"{base_url}/v1/openai/v1/chat/completions", json=body)
    assert expected.status_code == 502
    assert page.inner_text("#chat-error") == f"502: {expected.json()['detail']}"
    assert page.locator(".msg.assistant").count() == 0
    assert page.is_enabled("#chat-submit")


def test_rag_uploads_a_file_and_shows_the_chunk_that_answers(page, base_url, tmp_path):
    notes = tmp_path / "zorland.txt"
    notes.write_text("The capital of Zorland is Quib. It rains there on Tuesdays.")
    open_tab(page, base_url, "rag")
    page.fill("#rag-store-name", "trip notes")
    page.set_input_files("#rag-files", str(notes))
    row = page.locator("#rag-file-rows tr", has_text="zorland.txt")
    row.locator(".status-completed").wait_for()
    assert page.locator("#rag-store option", has_text="trip notes").count() == 1
    page.fill("#rag-question", "What is the capital of Zorland?")
    page.press("#rag-question", "Enter")
    chunk = page.locator(".chunk", has_text="Quib")
    chunk.wait_for()
    assert "zorland.txt" in chunk.locator("header").inner_text()
    assert re.search(r"score \d\.\d{3}", chunk.locator("header").inner_text())
    screenshot(page, tmp_path / "rag.png")


def test_rag_answers_through_the_responses_api_with_file_search(page, base_url, scripted):
    open_tab(page, base_url, "rag")
    page.fill("#rag-store-name", "birds")
    page.click("#rag-store-form button[type=submit]")
    page.locator("#rag-store option:checked", has_text="birds").wait_for(state="attached")
    # A file dropped on the drop zone, as a drag from the desktop delivers it.
    page.evaluate(
        """([name, text]) => {
        const files = new DataTransfer();
        files.items.add(new File([text], name, {type: "text/markdown"}));
        document.getElementById("rag-drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
        }""",
        ["birds.md", "Ravens can mimic human speech."],
    )
    page.locator("#rag-file-rows tr", has_text="birds.md").locator(".status-completed").wait_for()
    page.select_option("#rag-mode", "responses")
    page.select_option("#rag-model", "scripted")
    scripted.play(Reply(tool_calls=[("file_search", {"query": "ravens speech"})]))
    page.fill("#rag-question", "Can ravens talk?")
    page.click("#rag-ask button[type=submit]")
    chunk = page.locator(".chunk", has_text="Ravens can mimic human speech.")
    chunk.wait_for()
    assert "birds.md" in chunk.locator("header").inner_text()
    answer = page.locator("#rag-answer .msg.assistant")
    assert answer.inner_text().startswith("tool said: ")
    assert "1 chunk retrieved" in page.inner_text("#rag-answer .stats")
    tools = scripted.chats[0]["tools"]
    assert [t["function"]["name"] for t in tools] == ["file_search"]


def test_agent_turn_steps_are_drawn_as_a_timeline(page, base_url, tmp_path):
    open_tab(page, base_url, "agents")
    page.fill("#agent-instructions", "Be brief.")
    page.click("#agent-form button[type=submit]")
    page.locator("#agent-ids", has_text="session").wait_for()
    page.fill("#agent-input", "hello agent")
    page.click("#agent-submit")
    turn = page.locator(".turn").first
    turn.locator(".stats", has_text="1 step ·").wait_for()
    assert turn.locator(".answer").inner_text().strip() == "echo: hello agent"
    step = turn.locator('.step[data-step-type="inference"]')
    assert step.count() == 1
    assert step.locator(".span-bar").count() == 1
    assert re.fullmatch(r"\d+(\.\d+)? (µs|ms|s)", step.locator(".span-label").inner_text())
    screenshot(page, tmp_path / "agents.png")


def test_agent_tool_execution_step_shows_the_call_and_its_result(
    page, base_url, scripted, tmp_path
):
    # A vector store with one file, made through the API; the agent searches it with
    # builtin::rag's knowledge_search when the scripted model calls that tool.
    upload = httpx.post(
        f"{base_url}/v1/openai/v1/files",
        files={"file": ("glossary.txt", b"A quokka is a small wallaby.", "text/plain")},
        data={"purpose": "assistants"},
    ).json()
    store = httpx.post(
        f"{base_url}/v1/openai/v1/vector_stores",
        json={"name": "glossary", "file_ids": [upload["id"]]},
    ).json()
    open_tab(page, base_url, "agents")
    page.check('input[name="toolgroup"][value="builtin::rag"]')
    page.select_option("#agent-rag-stores", store["id"])
    page.select_option("#agent-model", "scripted")
    page.click("#agent-form button[type=submit]")
    page.locator("#agent-ids", has_text="session").wait_for()
    scripted.play(Reply(tool_calls=[("knowledge_search", {"query": "quokka"})]))
    page.fill("#agent-input", "What is a quokka?")
    page.press("#agent-input", "Control+Enter")
    turn = page.locator(".turn").first
    turn.locator(".stats", has_text="3 steps ·").wait_for()
    kinds = turn.locator(".step").evaluate_all("steps => steps.map(s => s.dataset.stepType)")
    assert kinds == ["inference", "tool_execution", "inference"]
    tool = turn.locator('.step[data-step-type="tool_execution"]')
    tool.locator("summary").click()
    assert 'knowledge_search({"query":"quokka"})' in tool.inner_text()
    assert "A quokka is a small wallaby." in tool.locator("pre").inner_text()
    assert turn.locator(".answer").inner_text().startswith("tool said: ")
    assert scripted.chats[0]["tools"][0]["function"]["name"] == "knowledge_search"
    screenshot(page, tmp_path / "agents-tools.png")


def test_a_trace_is_drawn_as_a_waterfall(page, base_url, tmp_path):
    r = httpx.post(
        f"{base_url}/v1/openai/v1/chat/completions",
        json={"model": "echo-model", "messages": [{"role": "user", "content": "trace me"}]},
    )
    trace_id = r.headers["x-trace-id"]
    telemetry.force_flush()
    open_tab(page, base_url, "traces")
    button = page.locator(f'#traces-list button[data-trace-id="{trace_id}"]')
    button.wait_for()
    assert "POST /v1/openai/v1/chat/completions" in button.inner_text()
    # The page's own reads are not recorded (they send an unsampled traceparent).
    listed = page.eval_on_selector_all("#traces-list button", "bs => bs.map(b => b.innerText)")
    assert not [t for t in listed if "/v1/telemetry" in t or "/v1/inspect" in t], listed
    button.press("Enter")
    rows = page.locator("#trace-waterfall .span-row")
    rows.first.wait_for()
    assert rows.count() >= 2
    assert rows.first.inner_text().startswith("POST /v1/openai/v1/chat/completions")
    widths = page.eval_on_selector_all(
        "#trace-waterfall .span-bar", "bars => bars.map(b => b.getBoundingClientRect().width)"
    )
    assert widths[0] == max(widths) and widths[0] > 100  # the root spans the whole track
    assert " spans · " in page.inner_text("#trace-title")
    screenshot(page, tmp_path / "traces.png")


def test_cluster_lists_the_stacks_deployments(page, base_url, tmp_path):
    open_tab(page, base_url, "cluster")
    page.locator("#cluster-deployments tr").first.wait_for()
    names = page.eval_on_selector_all(
        "#cluster-deployments tr td:first-child", "cells => cells.map(c => c.innerText)"
    )
    assert names[0] == "gateway"
    assert {"agents", "vector-io", "files", "index-faiss"} <= set(names)
    assert "in this one process" in page.inner_text("#cluster-summary")
    screenshot(page, tmp_path / "cluster.png")


def test_narrow_window_has_no_sideways_scroll(page, base_url, tmp_path):
    page.set_viewport_size({"width": 400, "height": 800})
    open_tab(page, base_url, "cluster")
    page.locator("#cluster-deployments tr").first.wait_for()
    for tab in ("rag", "agents", "traces", "cluster", "chat"):
        open_tab(page, base_url, tab)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (tab, overflow)
    page.fill("#chat-input", "a narrow window still streams")
    page.click("#chat-submit")
    page.locator(".msg.assistant .stats", has_text="total").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    screenshot(page, tmp_path / "narrow.png")
