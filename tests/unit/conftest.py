"""Fixtures of the unit tests: the fake remote inference services (see `remote_servers`)
and a real MCP server (see `tests.mcp_server`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mcp_server import MCPTestServer
from tests.unit.support.identity_provider import IdentityProvider
from tests.unit.support.remote_ollama_server import OLLAMA_MODELS, ollama_app
from tests.unit.support.remote_servers import FakeService, openai_app
from tests.unit.support.search_servers import search_app


@pytest.fixture(scope="session")
def _openai_service() -> Iterator[FakeService]:
    service = FakeService(openai_app).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def _ollama_service() -> Iterator[FakeService]:
    service = FakeService(ollama_app).start()
    yield service
    service.stop()


@pytest.fixture()
def openai_server(_openai_service: FakeService) -> FakeService:
    """A service speaking OpenAI's API, its records and failures cleared."""
    return _openai_service.reset()


@pytest.fixture()
def ollama_server(_ollama_service: FakeService) -> FakeService:
    """A service speaking Ollama's API, its records and failures cleared."""
    return _ollama_service.reset(OLLAMA_MODELS)


@pytest.fixture(scope="session")
def _mcp_service() -> Iterator[MCPTestServer]:
    service = MCPTestServer().start()
    yield service
    service.stop()


@pytest.fixture()
def mcp_server(_mcp_service: MCPTestServer) -> MCPTestServer:
    """A real MCP server on loopback (SSE and streamable HTTP), its auth requirement cleared."""
    return _mcp_service.reset()


@pytest.fixture(scope="session")
def _search_service() -> Iterator[FakeService]:
    service = FakeService(search_app).start()
    yield service
    service.stop()


@pytest.fixture()
def search_server(_search_service: FakeService) -> FakeService:
    """Tavily, Brave, Bing and Wolfram|Alpha stand-ins, their records and failures cleared."""
    return _search_service.reset()


@pytest.fixture(scope="session")
def _identity_provider() -> Iterator[IdentityProvider]:
    idp = IdentityProvider().start()
    yield idp
    idp.stop()


@pytest.fixture()
def idp(_identity_provider: IdentityProvider) -> IdentityProvider:
    """An identity provider on loopback (JWKS, introspection, a custom auth endpoint),
    its published keys and records reset."""
    return _identity_provider.reset()
