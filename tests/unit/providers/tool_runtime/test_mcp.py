"""`remote::model-context-protocol` against a real MCP server on loopback, over SSE and
over streamable HTTP, through the tool runtime router of an in-process stack."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time

import pytest
import uvicorn

from stackray.api.common import URL, ImageContentItem, TextContentItem
from stackray.api.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    ServiceUnavailableError,
)
from stackray.api.tools import InvokeToolRequest, RegisterToolGroupRequest
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.request_context import RequestContext, use_context
from tests.mcp_server import PNG, TOKEN, MCPTestServer, build_mcp_server

TOOLS = {"add", "echo", "whoami", "picture", "document", "fail"}


def run(coro):
    return asyncio.run(coro)


def build(tmp_path, config: dict | None = None, groups: list | None = None):
    stack = parse_config(
        {
            "version": 2,
            "image_name": "mcp",
            "apis": ["tool_runtime"],
            "providers": {
                "tool_runtime": [
                    {
                        "provider_id": "mcp",
                        "provider_type": "remote::model-context-protocol",
                        "config": config or {},
                    }
                ]
            },
            "tool_groups": groups or [],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    return run(build_local_stack(stack))["tool_runtime"]


@pytest.fixture(params=["sse", "streamable_http"])
def endpoint(request, mcp_server: MCPTestServer) -> str:
    return mcp_server.sse_url if request.param == "sse" else mcp_server.http_url


def register(router, uri: str, group: str = "mcp::test"):
    return run(
        router.register_tool_group(
            RegisterToolGroupRequest(
                toolgroup_id=group, provider_id="mcp", mcp_endpoint=URL(uri=uri)
            )
        )
    )


def invoke(router, tool: str, /, **kwargs):
    return run(router.invoke_tool(InvokeToolRequest(tool_name=tool, kwargs=kwargs)))


def test_lists_tools_with_parameters(tmp_path, endpoint):
    router = build(tmp_path)
    register(router, endpoint)
    tools = {t.identifier: t for t in run(router.list_tools("mcp::test")).data}
    assert set(tools) == TOOLS
    add = tools["add"]
    assert add.description == "Add two integers"
    assert add.toolgroup_id == "mcp::test" and add.provider_id == "mcp"
    assert [(p.name, p.parameter_type, p.required) for p in add.parameters] == [
        ("a", "integer", True),
        ("b", "integer", True),
    ]
    echo = {p.name: p for p in tools["echo"].parameters}
    assert echo["times"].required is False and echo["times"].default == 1
    assert add.metadata == {"endpoint": endpoint}


def test_calls_tools_and_converts_content(tmp_path, endpoint):
    router = build(tmp_path)
    register(router, endpoint)
    result = invoke(router, "add", a=20, b=22)
    assert result.error_message is None
    assert result.content == [TextContentItem(text="42")]
    assert result.metadata == {"structured_content": {"result": 42}}

    picture = invoke(router, "picture")
    assert isinstance(picture.content, list) and isinstance(picture.content[0], ImageContentItem)
    assert base64.b64decode(picture.content[0].image.data or "") == PNG

    document = invoke(router, "document", name="notes")
    assert document.content == [TextContentItem(text="contents of notes")]

    assert invoke(router, "echo", text="hi", times=3).content == [TextContentItem(text="hi hi hi")]


def test_tool_error_is_a_result(tmp_path, endpoint):
    router = build(tmp_path)
    register(router, endpoint)
    result = invoke(router, "fail", message="the disk is full")
    assert result.error_code == 1
    assert "the disk is full" in (result.error_message or "")


def test_auth_header_from_provider_data(tmp_path, endpoint, mcp_server):
    router = build(tmp_path)
    register(router, endpoint)
    denied = invoke(router, "whoami")
    assert denied.error_message and "unauthorized" in denied.error_message
    data = {"mcp_headers": {endpoint: {"Authorization": f"Bearer {TOKEN}"}}}
    with use_context(RequestContext(provider_data=data)):
        allowed = invoke(router, "whoami")
    assert allowed.error_message is None
    assert allowed.content == [TextContentItem(text="authorized")]
    # The older form: a list of "Header: value" lines.
    data = {"mcp_headers": {endpoint: [f"Authorization: Bearer {TOKEN}"]}}
    with use_context(RequestContext(provider_data=data)):
        assert invoke(router, "whoami").error_message is None
    # Headers for another endpoint are not sent to this one.
    data = {"mcp_headers": {"http://elsewhere.invalid/mcp": {"Authorization": f"Bearer {TOKEN}"}}}
    with use_context(RequestContext(provider_data=data)):
        assert invoke(router, "whoami").error_message
    assert mcp_server.seen_authorization == [
        None,
        f"Bearer {TOKEN}",
        f"Bearer {TOKEN}",
        None,
    ]


def test_server_refusing_credentials_is_401_naming_mcp_headers(tmp_path, endpoint, mcp_server):
    router = build(tmp_path)
    register(router, endpoint)
    mcp_server.required_token = TOKEN
    with pytest.raises(AuthenticationError) as e:
        invoke(router, "add", a=1, b=2)
    assert "mcp_headers" in e.value.message and endpoint in e.value.message
    data = {"mcp_headers": {endpoint: {"Authorization": f"Bearer {TOKEN}"}}}
    with use_context(RequestContext(provider_data=data)):
        assert invoke(router, "add", a=1, b=2).content == [TextContentItem(text="3")]


def test_registration_needs_the_credentials_too(tmp_path, endpoint, mcp_server):
    router = build(tmp_path)
    mcp_server.required_token = TOKEN
    with pytest.raises(AuthenticationError):
        register(router, endpoint)
    assert (
        run(router.list_tool_groups()).data == []
    )  # a group whose tools cannot be listed is not kept
    data = {"mcp_headers": {endpoint: {"Authorization": f"Bearer {TOKEN}"}}}
    with use_context(RequestContext(provider_data=data)):
        register(router, endpoint)
    assert {t.identifier for t in run(router.list_tools("mcp::test")).data} == TOOLS


def test_bad_mcp_headers_is_400(tmp_path, endpoint):
    router = build(tmp_path)
    register(router, endpoint)
    with use_context(RequestContext(provider_data={"mcp_headers": {endpoint: 7}})):
        with pytest.raises(BadRequestError) as e:
            invoke(router, "add", a=1, b=2)
    assert e.value.field and "mcp_headers" in e.value.field
    with use_context(RequestContext(provider_data={"mcp_headers": {endpoint: ["no colon"]}})):
        with pytest.raises(BadRequestError):
            invoke(router, "add", a=1, b=2)


def test_sse_at_another_path_falls_back_from_streamable_http(tmp_path, mcp_server):
    router = build(tmp_path)
    defs = run(router.list_runtime_tools(None, URL(uri=mcp_server.events_url))).data
    assert {d.name for d in defs} == TOOLS


def test_forced_transport(tmp_path, mcp_server):
    router = build(tmp_path, config={"transport": "streamable_http"})
    with pytest.raises(NotFoundError):
        run(router.list_runtime_tools(None, URL(uri=mcp_server.events_url)))
    router = build(tmp_path, config={"transport": "sse"})
    assert run(router.list_runtime_tools(None, URL(uri=mcp_server.events_url))).data


def test_unreachable_and_missing_endpoints(tmp_path, mcp_server):
    router = build(tmp_path, config={"timeout_s": 5})
    with pytest.raises(ServiceUnavailableError) as e:
        run(router.list_runtime_tools(None, URL(uri="http://127.0.0.1:9/mcp")))
    assert "127.0.0.1:9" in e.value.message
    with pytest.raises(ServiceUnavailableError):
        run(router.list_runtime_tools(None, URL(uri="http://127.0.0.1:9/sse")))
    with pytest.raises(NotFoundError) as e:
        run(router.list_runtime_tools(None, URL(uri=f"http://127.0.0.1:{mcp_server.http_port}/x")))
    assert "no MCP server there" in e.value.message


def test_config_group_of_a_server_that_is_down_is_listed_later(tmp_path):
    # The group points at a free port; the server starts there after the stack.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}/sse"
    router = build(
        tmp_path,
        config={"timeout_s": 5},
        groups=[{"toolgroup_id": "mcp::later", "provider_id": "mcp", "mcp_endpoint": {"uri": uri}}],
    )
    assert [g.identifier for g in run(router.list_tool_groups()).data] == ["mcp::later"]
    with pytest.raises(ServiceUnavailableError):
        run(router.list_tools("mcp::later"))
    assert run(router.list_tools()).data == []  # one group down hides nothing else

    server = build_mcp_server(MCPTestServer())
    uv = uvicorn.Server(
        uvicorn.Config(server.sse_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not uv.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert {t.identifier for t in run(router.list_tools("mcp::later")).data} == TOOLS
        assert invoke(router, "add", a=1, b=1).content == [TextContentItem(text="2")]
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


# ---- session reuse ---------------------------------------------------------------------


def invoke_many(router, calls: list[tuple[str, dict, dict | None]]):
    """Several calls in one event loop (as in a Serve replica), each with its provider data."""

    async def go():
        results = []
        for tool, kwargs, data in calls:
            with use_context(RequestContext(provider_data=data)):
                results.append(
                    await router.invoke_tool(InvokeToolRequest(tool_name=tool, kwargs=kwargs))
                )
        return results

    return run(go())


def test_calls_share_a_session(tmp_path, endpoint, mcp_server):
    router = build(tmp_path)
    register(router, endpoint)
    mcp_server.requests.clear()
    results = invoke_many(router, [("add", {"a": i, "b": 1}, None) for i in range(5)])
    assert [r.content for r in results] == [[TextContentItem(text=str(i + 1))] for i in range(5)]
    assert mcp_server.sessions_opened() == 1


def test_sessions_are_per_credentials(tmp_path, endpoint, mcp_server):
    router = build(tmp_path)
    register(router, endpoint)
    mcp_server.requests.clear()
    mcp_server.seen_authorization.clear()
    good = {"mcp_headers": {endpoint: {"Authorization": f"Bearer {TOKEN}"}}}
    bad = {"mcp_headers": {endpoint: {"Authorization": "Bearer someone-else"}}}
    results = invoke_many(
        router,
        [("whoami", {}, good), ("whoami", {}, bad), ("whoami", {}, good), ("whoami", {}, None)],
    )
    assert [r.error_message is None for r in results] == [True, False, True, False]
    assert mcp_server.seen_authorization == [
        f"Bearer {TOKEN}",
        "Bearer someone-else",
        f"Bearer {TOKEN}",
        None,
    ]
    assert mcp_server.sessions_opened() == 3


def test_idle_sessions_close(tmp_path, endpoint, mcp_server):
    router = build(tmp_path, config={"session_idle_s": 0.2})
    register(router, endpoint)
    mcp_server.requests.clear()

    async def go():
        await router.invoke_tool(InvokeToolRequest(tool_name="add", kwargs={"a": 1, "b": 1}))
        await asyncio.sleep(0.6)
        await router.invoke_tool(InvokeToolRequest(tool_name="add", kwargs={"a": 1, "b": 1}))

    run(go())
    assert mcp_server.sessions_opened() == 2


def test_no_pooling(tmp_path, endpoint, mcp_server):
    router = build(tmp_path, config={"session_idle_s": 0})
    register(router, endpoint)
    mcp_server.requests.clear()
    invoke_many(router, [("add", {"a": 1, "b": 2}, None)] * 3)
    assert mcp_server.sessions_opened() == 3


def serve(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    return server, thread


@pytest.mark.parametrize("transport", ["sse", "streamable_http"])
def test_a_restarted_server_gets_a_new_session(tmp_path, transport):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = "/sse" if transport == "sse" else "/mcp"
    uri = f"http://127.0.0.1:{port}{path}"

    def app():
        mcp = build_mcp_server(MCPTestServer())
        return mcp.sse_app() if transport == "sse" else mcp.streamable_http_app()

    router = build(tmp_path, config={"timeout_s": 10})
    server, thread = serve(app(), port)
    register(router, uri)

    async def go():
        first = await router.invoke_tool(
            InvokeToolRequest(tool_name="add", kwargs={"a": 1, "b": 2})
        )
        nonlocal server, thread
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        server, thread = await asyncio.to_thread(serve, app(), port)
        second = await router.invoke_tool(
            InvokeToolRequest(tool_name="add", kwargs={"a": 2, "b": 2})
        )
        return first, second

    try:
        first, second = run(go())
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert first.content == [TextContentItem(text="3")]
    assert second.content == [TextContentItem(text="4")]
