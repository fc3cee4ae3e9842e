"""ToolRuntimeRouter through `build_local_stack`: the tool group and tool registries,
dispatch by tool name, argument checks, and persistence. The tools come from a real MCP
server on loopback and the Tavily stand-in."""

from __future__ import annotations

import asyncio

import pytest

from stackray.api.common import URL, TextContentItem
from stackray.api.errors import BadRequestError, ConflictError, NotFoundError
from stackray.api.tools import InvokeToolRequest, RegisterToolGroupRequest
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.routers.tool_runtime import TOOL_LISTINGS, ToolListing
from tests.unit.support.search_servers import KEY


def run(coro):
    return asyncio.run(coro)


def config(tmp_path, search_url: str, groups: list | None = None) -> dict:
    return {
        "version": 2,
        "image_name": "tools",
        "apis": ["tool_runtime"],
        "providers": {
            "tool_runtime": [
                {"provider_id": "mcp", "provider_type": "remote::model-context-protocol"},
                {
                    "provider_id": "tavily",
                    "provider_type": "remote::tavily-search",
                    "config": {"base_url": search_url, "api_key": KEY},
                },
            ]
        },
        "tool_groups": groups
        if groups is not None
        else [{"toolgroup_id": "builtin::websearch", "provider_id": "tavily"}],
        "storage": {"data_dir": str(tmp_path)},
    }


@pytest.fixture()
def router(tmp_path, search_server):
    stack = parse_config(config(tmp_path, search_server.url))
    # The router object itself (its registry is read below), not a client of it.
    return run(build_local_stack(stack))["tool_runtime"].transport.target


def register(router, group: str, uri: str | None, provider: str = "mcp", args=None):
    return run(
        router.register_tool_group(
            RegisterToolGroupRequest(
                toolgroup_id=group,
                provider_id=provider,
                mcp_endpoint=URL(uri=uri) if uri else None,
                args=args,
            )
        )
    )


def invoke(router, tool: str, /, **kwargs):
    return run(router.invoke_tool(InvokeToolRequest(tool_name=tool, kwargs=kwargs)))


def test_config_groups_are_registered_at_start(router):
    groups = run(router.list_tool_groups()).data
    assert [(g.identifier, g.provider_id) for g in groups] == [("builtin::websearch", "tavily")]
    assert run(router.get_tool_group("builtin::websearch")).type == "tool_group"
    tool = run(router.get_tool("web_search"))
    assert (tool.toolgroup_id, tool.provider_id, tool.type) == (
        "builtin::websearch",
        "tavily",
        "tool",
    )


def test_register_list_get_unregister(router, mcp_server):
    group = register(router, "mcp::test", mcp_server.http_url)
    assert group.mcp_endpoint == URL(uri=mcp_server.http_url)
    assert {g.identifier for g in run(router.list_tool_groups()).data} == {
        "builtin::websearch",
        "mcp::test",
    }
    all_tools = {t.identifier: t.toolgroup_id for t in run(router.list_tools()).data}
    assert all_tools["web_search"] == "builtin::websearch"
    assert all_tools["add"] == "mcp::test"
    assert [t.identifier for t in run(router.list_tools("builtin::websearch")).data] == [
        "web_search"
    ]

    run(router.unregister_toolgroup("mcp::test"))
    with pytest.raises(NotFoundError) as e:
        run(router.get_tool_group("mcp::test"))
    assert "mcp::test" in e.value.message and e.value.field == "toolgroup_id"
    with pytest.raises(NotFoundError) as e:
        run(router.get_tool("add"))
    assert "'add'" in e.value.message and e.value.field == "tool_name"
    with pytest.raises(NotFoundError):
        invoke(router, "add", a=1, b=2)
    with pytest.raises(NotFoundError):
        run(router.list_tools("mcp::test"))
    with pytest.raises(NotFoundError):
        run(router.unregister_toolgroup("mcp::test"))


def test_dispatch_by_tool_name(router, mcp_server, search_server):
    register(router, "mcp::test", mcp_server.sse_url)
    assert invoke(router, "add", a=2, b=2).content == [TextContentItem(text="4")]
    assert '"query": "news"' in str(invoke(router, "web_search", query="news").content)
    assert search_server.last.path == "/search"


def test_bad_registrations(router, mcp_server):
    with pytest.raises(BadRequestError) as e:
        register(router, "x", mcp_server.http_url, provider="nope")
    assert e.value.field == "provider_id" and "nope" in e.value.message
    with pytest.raises(BadRequestError) as e:
        register(router, "x", None)
    assert e.value.field == "mcp_endpoint"
    with pytest.raises(BadRequestError) as e:
        register(router, "x", "ftp://127.0.0.1/mcp")
    assert e.value.field == "mcp_endpoint.uri"
    with pytest.raises(BadRequestError) as e:
        register(router, "x", mcp_server.http_url, provider="tavily")
    assert e.value.field == "mcp_endpoint"
    assert [g.identifier for g in run(router.list_tool_groups()).data] == ["builtin::websearch"]


def test_reregistering_is_idempotent_and_refreshes(router, mcp_server):
    register(router, "mcp::test", mcp_server.http_url)
    first = router.registry.get(ToolListing, TOOL_LISTINGS, "mcp::test")
    again = register(router, "mcp::test", mcp_server.http_url)
    second = router.registry.get(ToolListing, TOOL_LISTINGS, "mcp::test")
    assert again.identifier == "mcp::test"
    assert first is not None and second is not None and second.listed_at > first.listed_at
    with pytest.raises(ConflictError) as e:
        register(router, "mcp::test", mcp_server.sse_url)
    assert "mcp::test" in e.value.message
    # Asking the runtime for the group's tools refreshes them too.
    run(router.list_runtime_tools("mcp::test", None))
    third = router.registry.get(ToolListing, TOOL_LISTINGS, "mcp::test")
    assert third is not None and third.listed_at > second.listed_at


def test_tool_names_are_unique_across_groups(router, mcp_server):
    register(router, "mcp::one", mcp_server.http_url)
    with pytest.raises(ConflictError) as e:
        register(router, "mcp::two", mcp_server.sse_url)
    assert "mcp::one" in e.value.message and "add" in e.value.message
    assert "mcp::two" not in {g.identifier for g in run(router.list_tool_groups()).data}


def test_bad_kwargs_are_400_naming_the_argument(router, mcp_server):
    register(router, "mcp::test", mcp_server.http_url)
    with pytest.raises(BadRequestError) as e:
        invoke(router, "add", a=1)
    assert e.value.field == "kwargs.b" and "'b'" in e.value.message
    with pytest.raises(BadRequestError) as e:
        invoke(router, "add", a="one", b=2)
    assert e.value.field == "kwargs.a" and "integer" in e.value.message
    with pytest.raises(BadRequestError) as e:
        invoke(router, "add", a=True, b=2)
    assert e.value.field == "kwargs.a"
    with pytest.raises(BadRequestError) as e:
        invoke(router, "echo", text=["x"])
    assert e.value.field == "kwargs.text"
    # Optional parameters may be left out.
    assert invoke(router, "echo", text="hi").content == [TextContentItem(text="hi")]


def test_group_args_are_given_to_every_call(router, mcp_server):
    register(router, "mcp::test", mcp_server.http_url, args={"times": 2})
    assert invoke(router, "echo", text="hi").content == [TextContentItem(text="hi hi")]
    # The call's own arguments win.
    assert invoke(router, "echo", text="hi", times=3).content == [TextContentItem(text="hi hi hi")]


def test_runtime_listing(router, mcp_server):
    register(router, "mcp::test", mcp_server.sse_url)
    by_group = run(router.list_runtime_tools("mcp::test", None)).data
    assert {d.name for d in by_group} == {"add", "echo", "whoami", "picture", "document", "fail"}
    by_endpoint = run(router.list_runtime_tools(None, URL(uri=mcp_server.http_url))).data
    assert {d.name for d in by_endpoint} == {d.name for d in by_group}
    everything = {d.name for d in run(router.list_runtime_tools()).data}
    assert everything == {d.name for d in by_group} | {"web_search"}
    websearch = run(router.list_runtime_tools("builtin::websearch", None)).data
    assert [d.name for d in websearch] == ["web_search"]
    with pytest.raises(NotFoundError):
        run(router.list_runtime_tools("nope", None))


def test_endpoint_listing_needs_an_mcp_provider(tmp_path, search_server, mcp_server):
    raw = config(tmp_path, search_server.url)
    raw["providers"]["tool_runtime"] = raw["providers"]["tool_runtime"][1:]
    router = run(build_local_stack(parse_config(raw)))["tool_runtime"]
    with pytest.raises(BadRequestError) as e:
        run(router.list_runtime_tools(None, URL(uri=mcp_server.http_url)))
    assert e.value.field == "mcp_endpoint"


def test_registrations_survive_a_restart_and_are_shared(tmp_path, search_server, mcp_server):
    stack = parse_config(config(tmp_path, search_server.url))
    first = run(build_local_stack(stack))["tool_runtime"]
    register(first, "mcp::test", mcp_server.http_url, args={"times": 2})
    # Another replica (or the stack after a restart) on the same store sees it.
    second = run(build_local_stack(stack))["tool_runtime"]
    assert run(second.get_tool_group("mcp::test")).args == {"times": 2}
    assert invoke(second, "echo", text="yo").content == [TextContentItem(text="yo yo")]
    run(second.unregister_toolgroup("mcp::test"))
    with pytest.raises(NotFoundError):
        run(first.get_tool_group("mcp::test"))


def test_run_config_wins_over_a_stored_group(tmp_path, search_server, mcp_server):
    groups = [
        {
            "toolgroup_id": "mcp::cfg",
            "provider_id": "mcp",
            "mcp_endpoint": {"uri": mcp_server.sse_url},
        }
    ]
    run(build_local_stack(parse_config(config(tmp_path, search_server.url, groups))))
    groups[0]["mcp_endpoint"] = {"uri": mcp_server.http_url}
    router = run(build_local_stack(parse_config(config(tmp_path, search_server.url, groups))))[
        "tool_runtime"
    ]
    group = run(router.get_tool_group("mcp::cfg"))
    assert group.mcp_endpoint == URL(uri=mcp_server.http_url)
    assert run(router.get_tool("add")).metadata == {"endpoint": mcp_server.http_url}


def test_config_group_of_an_unknown_provider_is_a_config_error(tmp_path, search_server):
    from stackray.api.errors import ConfigError

    groups = [{"toolgroup_id": "builtin::websearch", "provider_id": "serpapi"}]
    with pytest.raises(ConfigError) as e:
        parse_config(config(tmp_path, search_server.url, groups))
    assert "tool_groups[0].provider_id" in str(e.value) and "serpapi" in str(e.value)
