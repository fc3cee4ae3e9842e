"""Tool groups, tools and the tool runtime on the shared Serve stack, through
`llama-stack-client`: MCP servers on loopback (streamable HTTP and SSE) registered as tool
groups, their tools listed and invoked in the tool-runtime deployment."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator

import llama_stack_client
import pytest

from tests.mcp_server import TOKEN, MCPTestServer

MCP_TOOLS = {"add", "echo", "whoami", "picture", "document", "fail"}


@pytest.fixture(scope="module")
def mcp() -> Iterator[MCPTestServer]:
    server = MCPTestServer().start()
    yield server
    server.stop()


@pytest.fixture()
def http_group(stack, mcp) -> Iterator[str]:
    client = stack.client()
    client.toolgroups.register(
        toolgroup_id="mcp::it-http",
        provider_id="model-context-protocol",
        mcp_endpoint={"uri": mcp.http_url},
    )
    yield "mcp::it-http"
    client.toolgroups.unregister("mcp::it-http")


def test_mcp_tool_group_end_to_end(stack, mcp, http_group):
    client = stack.client()
    groups = {g.identifier: g for g in client.toolgroups.list()}
    assert groups[http_group].provider_id == "model-context-protocol"
    assert groups[http_group].mcp_endpoint.uri == mcp.http_url
    assert "builtin::websearch" in groups  # from the run config

    tools = client.tools.list(toolgroup_id=http_group)
    assert {t.identifier for t in tools} == MCP_TOOLS
    add = client.tools.get("add")
    assert add.toolgroup_id == http_group
    assert [(p.name, p.parameter_type, p.required) for p in add.parameters] == [
        ("a", "integer", True),
        ("b", "integer", True),
    ]

    defs = client.tool_runtime.list_tools(tool_group_id=http_group)
    assert {d.name for d in defs} == MCP_TOOLS
    over_sse = client.tool_runtime.list_tools(mcp_endpoint={"uri": mcp.sse_url})
    assert {d.name for d in over_sse} == MCP_TOOLS

    result = client.tool_runtime.invoke_tool(tool_name="add", kwargs={"a": 19, "b": 23})
    assert result.content[0].text == "42" and result.error_message is None
    picture = client.tool_runtime.invoke_tool(tool_name="picture", kwargs={})
    assert picture.content[0].type == "image"
    failed = client.tool_runtime.invoke_tool(tool_name="fail", kwargs={"message": "nope"})
    assert failed.error_code == 1 and "nope" in failed.error_message

    # Invocation latency through gateway -> tool-runtime replica -> MCP server (a session per call).
    timings = []
    for i in range(10):
        started = time.perf_counter()
        client.tool_runtime.invoke_tool(tool_name="add", kwargs={"a": i, "b": 1})
        timings.append(time.perf_counter() - started)
    print(
        f"\ninvoke_tool over Serve + MCP streamable HTTP: median {statistics.median(timings) * 1000:.1f} ms"
    )


def test_auth_headers_travel_to_the_mcp_server(stack, mcp, http_group):
    client = stack.client()
    denied = client.tool_runtime.invoke_tool(tool_name="whoami", kwargs={})
    assert "unauthorized" in (denied.error_message or "")
    provider_data = {"mcp_headers": {mcp.http_url: {"Authorization": f"Bearer {TOKEN}"}}}
    allowed = client.tool_runtime.invoke_tool(
        tool_name="whoami",
        kwargs={},
        extra_headers={"X-LlamaStack-Provider-Data": json.dumps(provider_data)},
    )
    assert allowed.error_message is None and allowed.content[0].text == "authorized"


def test_sse_group_and_errors(stack, mcp):
    client = stack.client()
    client.toolgroups.register(
        toolgroup_id="mcp::it-sse",
        provider_id="model-context-protocol",
        mcp_endpoint={"uri": mcp.sse_url},
        args={"times": 2},
    )
    try:
        assert (
            client.tool_runtime.invoke_tool(tool_name="echo", kwargs={"text": "hi"}).content[0].text
            == "hi hi"
        )
        with pytest.raises(llama_stack_client.BadRequestError) as e:
            client.tool_runtime.invoke_tool(tool_name="add", kwargs={"a": 1})
        assert "'b'" in str(e.value)
    finally:
        client.toolgroups.unregister("mcp::it-sse")

    with pytest.raises(llama_stack_client.NotFoundError) as nf:
        client.toolgroups.get("mcp::it-sse")
    assert "mcp::it-sse" in str(nf.value)
    with pytest.raises(llama_stack_client.NotFoundError):
        client.tools.get("no-such-tool")
    with pytest.raises(llama_stack_client.NotFoundError):
        client.tool_runtime.invoke_tool(tool_name="no-such-tool", kwargs={})
    with pytest.raises(llama_stack_client.NotFoundError):
        client.tools.list(toolgroup_id="mcp::it-sse")
    with pytest.raises(llama_stack_client.BadRequestError) as bad:
        client.toolgroups.register(toolgroup_id="x", provider_id="model-context-protocol")
    assert "mcp_endpoint" in str(bad.value)


def test_web_search_without_a_key_names_the_field(stack):
    client = stack.client()
    with pytest.raises(llama_stack_client.BadRequestError) as e:
        client.tool_runtime.invoke_tool(tool_name="web_search", kwargs={"query": "ray"})
    assert "tavily_search_api_key" in str(e.value)
