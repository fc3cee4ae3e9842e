"""The tool groups, tools and tool runtime routes over the gateway (TestClient, no Ray),
driven with plain HTTP and with `llama-stack-client`, against a real MCP server on
loopback and the Tavily stand-in."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient
from llama_stack_client import LlamaStackClient, NotFoundError

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.mcp_server import TOKEN
from tests.unit.support.search_servers import KEY

MCP_TOOLS = {"add", "echo", "whoami", "picture", "document", "fail"}


@pytest.fixture()
def http(tmp_path, search_server):
    stack = parse_config(
        {
            "version": 2,
            "image_name": "gw-tools",
            "apis": ["tool_runtime"],
            "providers": {
                "tool_runtime": [
                    {"provider_id": "mcp", "provider_type": "remote::model-context-protocol"},
                    {
                        "provider_id": "tavily",
                        "provider_type": "remote::tavily-search",
                        "config": {"base_url": search_server.url},
                    },
                ]
            },
            "tool_groups": [{"toolgroup_id": "builtin::websearch", "provider_id": "tavily"}],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as c:
        yield c


class ViaTestClient(httpx.BaseTransport):
    """An httpx transport handing each request to the gateway's TestClient."""

    def __init__(self, test_client: TestClient) -> None:
        self.test_client = test_client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "host"]
        r = self.test_client.request(
            request.method, str(request.url), headers=headers, content=request.read()
        )
        return httpx.Response(r.status_code, headers=r.headers, content=r.content)


@pytest.fixture()
def client(http) -> LlamaStackClient:
    transport = httpx.Client(transport=ViaTestClient(http), base_url="http://testserver")
    return LlamaStackClient(base_url="http://testserver", http_client=transport, max_retries=0)


def test_toolgroups_over_http(http, mcp_server):
    r = http.post(
        "/v1/toolgroups",
        json={
            "toolgroup_id": "mcp::test",
            "provider_id": "mcp",
            "mcp_endpoint": {"uri": mcp_server.http_url},
        },
    )
    assert r.status_code == 200, r.text
    groups = http.get("/v1/toolgroups").json()["data"]
    assert {g["identifier"] for g in groups} == {"builtin::websearch", "mcp::test"}
    group = http.get("/v1/toolgroups/mcp::test").json()
    assert group == {
        "identifier": "mcp::test",
        "provider_resource_id": "mcp::test",
        "provider_id": "mcp",
        "type": "tool_group",
        "mcp_endpoint": {"uri": mcp_server.http_url},
    }
    tools = http.get("/v1/tools", params={"toolgroup_id": "mcp::test"}).json()["data"]
    assert {t["identifier"] for t in tools} == MCP_TOOLS
    add = http.get("/v1/tools/add").json()
    assert add["toolgroup_id"] == "mcp::test" and add["type"] == "tool"
    assert [p["name"] for p in add["parameters"]] == ["a", "b"]

    r = http.post("/v1/tool-runtime/invoke", json={"tool_name": "add", "kwargs": {"a": 1, "b": 2}})
    assert r.status_code == 200
    assert r.json()["content"] == [{"type": "text", "text": "3"}]

    assert http.delete("/v1/toolgroups/mcp::test").status_code == 200
    r = http.get("/v1/toolgroups/mcp::test")
    assert r.status_code == 404 and "mcp::test" in r.text


def test_errors_over_http(http, mcp_server):
    http.post(
        "/v1/toolgroups",
        json={
            "toolgroup_id": "mcp::test",
            "provider_id": "mcp",
            "mcp_endpoint": {"uri": mcp_server.sse_url},
        },
    )
    r = http.get("/v1/tools/nope")
    assert r.status_code == 404 and "nope" in r.text
    r = http.post("/v1/tool-runtime/invoke", json={"tool_name": "nope", "kwargs": {}})
    assert r.status_code == 404 and "nope" in r.text
    r = http.post("/v1/tool-runtime/invoke", json={"tool_name": "add", "kwargs": {"a": 1}})
    assert r.status_code == 400
    assert "'b'" in r.text and "kwargs.b" in r.text
    r = http.post("/v1/toolgroups", json={"toolgroup_id": "x", "provider_id": "nope"})
    assert r.status_code == 400 and "provider_id" in r.text
    r = http.post("/v1/toolgroups", json={"toolgroup_id": "x", "provider_id": "mcp"})
    assert r.status_code == 400 and "mcp_endpoint" in r.text
    r = http.post("/v1/toolgroups", json={"provider_id": "mcp"})
    assert r.status_code == 400 and "toolgroup_id" in r.text
    r = http.get("/v1/tools", params={"toolgroup_id": "nope"})
    assert r.status_code == 404
    # An unreachable MCP server is 503, not 500.
    r = http.post(
        "/v1/toolgroups",
        json={
            "toolgroup_id": "down",
            "provider_id": "mcp",
            "mcp_endpoint": {"uri": "http://127.0.0.1:9/mcp"},
        },
    )
    assert r.status_code == 503, r.text
    # A missing key is a 400 naming the provider-data field.
    r = http.post(
        "/v1/tool-runtime/invoke", json={"tool_name": "web_search", "kwargs": {"query": "x"}}
    )
    assert r.status_code == 400 and "tavily_search_api_key" in r.text


def test_provider_data_reaches_the_tools(http, mcp_server):
    http.post(
        "/v1/toolgroups",
        json={
            "toolgroup_id": "mcp::test",
            "provider_id": "mcp",
            "mcp_endpoint": {"uri": mcp_server.http_url},
        },
    )
    headers = {
        "X-LlamaStack-Provider-Data": json.dumps(
            {
                "mcp_headers": {mcp_server.http_url: {"Authorization": f"Bearer {TOKEN}"}},
                "tavily_search_api_key": KEY,
            }
        )
    }
    r = http.post(
        "/v1/tool-runtime/invoke", json={"tool_name": "whoami", "kwargs": {}}, headers=headers
    )
    assert r.json()["content"] == [{"type": "text", "text": "authorized"}]
    r = http.post(
        "/v1/tool-runtime/invoke",
        json={"tool_name": "web_search", "kwargs": {"query": "ray"}},
        headers=headers,
    )
    assert r.status_code == 200
    assert json.loads(r.json()["content"])["top_k"]


def test_llama_stack_client(client, mcp_server):
    client.toolgroups.register(
        toolgroup_id="mcp::sse",
        provider_id="mcp",
        mcp_endpoint={"uri": mcp_server.sse_url},
        args={"times": 2},
    )
    groups = {g.identifier: g for g in client.toolgroups.list()}
    assert groups["mcp::sse"].mcp_endpoint.uri == mcp_server.sse_url
    assert client.toolgroups.get("mcp::sse").args == {"times": 2}

    tools = client.tools.list(toolgroup_id="mcp::sse")
    assert {t.identifier for t in tools} == MCP_TOOLS
    assert client.tools.get("echo").parameters[0].name == "text"

    by_group = client.tool_runtime.list_tools(tool_group_id="mcp::sse")
    assert {t.name for t in by_group} == MCP_TOOLS
    by_endpoint = client.tool_runtime.list_tools(mcp_endpoint={"uri": mcp_server.http_url})
    assert {t.name for t in by_endpoint} == MCP_TOOLS

    result = client.tool_runtime.invoke_tool(tool_name="echo", kwargs={"text": "hey"})
    assert result.content[0].text == "hey hey"
    picture = client.tool_runtime.invoke_tool(tool_name="picture", kwargs={})
    assert picture.content[0].type == "image"
    failed = client.tool_runtime.invoke_tool(tool_name="fail", kwargs={"message": "boom"})
    assert failed.error_code == 1 and "boom" in failed.error_message

    client.toolgroups.unregister("mcp::sse")
    with pytest.raises(NotFoundError):
        client.toolgroups.get("mcp::sse")
    with pytest.raises(NotFoundError):
        client.tool_runtime.invoke_tool(tool_name="echo", kwargs={"text": "x"})


def test_mcp_endpoint_query_forms(http, mcp_server):
    for params in (
        {"mcp_endpoint[uri]": mcp_server.http_url},
        {"mcp_endpoint": json.dumps({"uri": mcp_server.http_url})},
        {"mcp_endpoint": mcp_server.http_url},
    ):
        r = http.get("/v1/tool-runtime/list-tools", params=params)
        assert r.status_code == 200, r.text
        assert {t["name"] for t in r.json()["data"]} == MCP_TOOLS
    r = http.get("/v1/tool-runtime/list-tools", params={"mcp_endpoint": "{not json"})
    assert r.status_code == 400 and "mcp_endpoint" in r.text
