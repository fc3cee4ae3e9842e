"""The web-service tool providers (Tavily, Brave, Bing, Wolfram|Alpha) at the HTTP
boundary: stand-in services on loopback answering with the real services' shapes."""

from __future__ import annotations

import asyncio
import json

import pytest

from stackray.api.errors import AuthenticationError, BadRequestError
from stackray.api.tools import InvokeToolRequest, RegisterToolGroupRequest
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.request_context import PROVIDER_DATA_HEADER, RequestContext, use_context
from tests.unit.support.remote_servers import Failure
from tests.unit.support.search_servers import KEY

SEARCH = {
    "tavily-search": ("tavily_search_api_key", "POST", "/search"),
    "brave-search": ("brave_search_api_key", "GET", "/res/v1/web/search"),
    "bing-search": ("bing_search_api_key", "GET", "/v7.0/search"),
}


def run(coro):
    return asyncio.run(coro)


def build(tmp_path, provider: str, base_url: str, **config):
    stack = parse_config(
        {
            "version": 2,
            "image_name": "search",
            "apis": ["tool_runtime"],
            "providers": {
                "tool_runtime": [
                    {
                        "provider_id": provider,
                        "provider_type": f"remote::{provider}",
                        "config": {"base_url": base_url} | config,
                    }
                ]
            },
            "tool_groups": [
                {
                    "toolgroup_id": "builtin::websearch"
                    if provider != "wolfram-alpha"
                    else "builtin::wolfram_alpha",
                    "provider_id": provider,
                }
            ],
            "storage": {"data_dir": str(tmp_path)},
        }
    )
    return run(build_local_stack(stack))["tool_runtime"]


def invoke(router, tool: str, **kwargs):
    return run(router.invoke_tool(InvokeToolRequest(tool_name=tool, kwargs=kwargs)))


@pytest.mark.parametrize("provider", sorted(SEARCH))
def test_web_search_with_configured_key(tmp_path, search_server, provider):
    router = build(tmp_path, provider, search_server.url, api_key=KEY, max_results=2)
    tools = run(router.list_tools("builtin::websearch")).data
    assert [t.identifier for t in tools] == ["web_search"]
    assert [(p.name, p.parameter_type) for p in tools[0].parameters] == [("query", "string")]

    result = invoke(router, "web_search", query="ray serve")
    assert result.error_message is None
    assert isinstance(result.content, str)
    data = json.loads(result.content)
    assert data["query"] == "ray serve"
    assert len(data["top_k"]) == 2
    first = data["top_k"][0]
    assert "ray serve" in (first.get("title") or "")
    assert first["url"].startswith("https://")

    _, method, path = SEARCH[provider]
    sent = search_server.last
    assert (sent.method, sent.path) == (method, path)
    if provider == "tavily-search":
        assert sent.headers["authorization"] == f"Bearer {KEY}"
        assert sent.body["query"] == "ray serve" and sent.body["max_results"] == 2
    elif provider == "brave-search":
        assert sent.headers["x-subscription-token"] == KEY
    else:
        assert sent.headers["ocp-apim-subscription-key"] == KEY


@pytest.mark.parametrize("provider", sorted(SEARCH))
def test_key_from_provider_data(tmp_path, search_server, provider):
    router = build(tmp_path, provider, search_server.url)
    key_field = SEARCH[provider][0]
    with use_context(RequestContext(provider_data={key_field: KEY})):
        result = invoke(router, "web_search", query="llama")
    assert json.loads(result.content)["top_k"]  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", [*sorted(SEARCH), "wolfram-alpha"])
def test_missing_key_is_400_naming_the_header_field(tmp_path, search_server, provider):
    router = build(tmp_path, provider, search_server.url)
    tool = "wolfram_alpha" if provider == "wolfram-alpha" else "web_search"
    key_field = f"{provider.replace('-', '_')}_api_key"
    with pytest.raises(BadRequestError) as e:
        invoke(router, tool, query="x")
    assert key_field in e.value.message
    assert e.value.field == f"{PROVIDER_DATA_HEADER}.{key_field}"
    assert search_server.requests == []  # nothing was sent without a key


def test_wrong_key_reaches_the_client_as_the_service_said(tmp_path, search_server):
    router = build(tmp_path, "tavily-search", search_server.url, api_key="wrong")
    with pytest.raises(AuthenticationError) as e:
        invoke(router, "web_search", query="x")
    assert "invalid API key" in e.value.message
    router = build(tmp_path, "bing-search", search_server.url, api_key="wrong")
    with pytest.raises(AuthenticationError):
        invoke(router, "web_search", query="x")


def test_rate_limit_is_retried(tmp_path, search_server):
    router = build(tmp_path, "brave-search", search_server.url, api_key=KEY)
    search_server.fail(
        Failure(status=429, body={"error": "slow down"}, headers={"retry-after": "0"})
    )
    result = invoke(router, "web_search", query="again")
    assert json.loads(result.content)["top_k"]  # type: ignore[arg-type]
    assert len(search_server.requests) == 2


def test_query_is_required(tmp_path, search_server):
    router = build(tmp_path, "tavily-search", search_server.url, api_key=KEY)
    with pytest.raises(BadRequestError) as e:
        invoke(router, "web_search")
    assert e.value.field == "kwargs.query"
    with pytest.raises(BadRequestError) as e:
        invoke(router, "web_search", query=3)
    assert e.value.field == "kwargs.query"


def test_wolfram_alpha(tmp_path, search_server):
    router = build(tmp_path, "wolfram-alpha", search_server.url, api_key=KEY)
    assert [t.identifier for t in run(router.list_tools()).data] == ["wolfram_alpha"]
    result = invoke(router, "wolfram_alpha", query="2+2")
    assert result.error_message is None
    pods = json.loads(result.content)["pods"]  # type: ignore[arg-type]
    assert pods == [{"title": "Input", "text": "2+2"}, {"title": "Result", "text": "4"}]
    sent = search_server.last
    assert sent.path == "/v2/query"

    no_answer = invoke(router, "wolfram_alpha", query="gibberish")
    assert no_answer.error_message and "spelling" in no_answer.error_message

    with use_context(RequestContext(provider_data={"wolfram_alpha_api_key": "bad"})):
        with pytest.raises(AuthenticationError) as e:
            invoke(router, "wolfram_alpha", query="2+2")
    assert "Invalid appid" in e.value.message


def test_config_rejects_unknown_fields(tmp_path, search_server):
    from stackray.api.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        build(tmp_path, "tavily-search", search_server.url, apikey=KEY)
    assert "apikey" in str(e.value)


def test_registering_websearch_by_api(tmp_path, search_server):
    router = build(tmp_path, "bing-search", search_server.url, api_key=KEY)
    group = run(
        router.register_tool_group(
            RegisterToolGroupRequest(toolgroup_id="builtin::websearch", provider_id="bing-search")
        )
    )
    assert group.identifier == "builtin::websearch"
    assert run(router.get_tool("web_search")).toolgroup_id == "builtin::websearch"
