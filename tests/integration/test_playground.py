"""The playground on the shared Serve stack: the Cluster tab reads Serve's own status of
every deployment (two gateway replicas), and a chat streams through a Serve gateway.

No test timeout of its own: the session's stack starts inside the first test that asks for
it (models load); every wait of the page is bounded by Playwright's timeout."""

from __future__ import annotations

from tests.unit.support.browser import chromium, colours


def test_cluster_endpoint_reads_serve(stack):
    body = stack.http().get("/v1/stackray/cluster").json()
    assert body["serve"] is True and body["application"] == "stackray"
    deployments = {d["name"]: d for d in body["deployments"]}
    assert deployments["gateway"]["status"] == "HEALTHY"
    assert deployments["gateway"]["replicas"] == {"RUNNING": 2}
    assert deployments["vector-io"]["replicas"] == {"RUNNING": 2}
    assert {"inference", "agents", "model-transformers"} & set(deployments)
    assert all(d["status"] == "HEALTHY" for d in deployments.values()), deployments
    assert body["nodes"] and all(n["alive"] for n in body["nodes"])


def test_playground_on_serve(stack, tmp_path):
    with chromium(tmp_path / "profile") as browser:
        browser.set_default_timeout(20_000)
        page = browser.new_page()
        page.goto(f"{stack.base_url}/playground#cluster")
        page.wait_for_selector("body[data-ready=true]")
        page.locator("#cluster-summary", has_text="Ray Serve application stackray").wait_for()
        assert page.locator("#cluster-deployments td.status-HEALTHY").count() >= 5
        page.screenshot(path=str(tmp_path / "cluster.png"), full_page=True)
        assert colours(tmp_path / "cluster.png") > 20
        page.goto(f"{stack.base_url}/playground#chat")
        page.locator("#chat-model option[value=echo-model]").wait_for(state="attached")
        page.select_option("#chat-model", "echo-model")
        page.fill("#chat-input", "through serve")
        page.click("#chat-submit")
        page.locator(".msg.assistant .answer", has_text="echo: through serve").wait_for()
        page.locator(".msg.assistant .stats", has_text="total").wait_for()
