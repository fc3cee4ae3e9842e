"""Fixtures of the unit tests: the fake remote inference service (see `remote_servers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.remote_servers import FakeService, openai_app


@pytest.fixture(scope="session")
def _openai_service() -> Iterator[FakeService]:
    service = FakeService(openai_app).start()
    yield service
    service.stop()


@pytest.fixture()
def openai_server(_openai_service: FakeService) -> FakeService:
    """A service speaking OpenAI's API, its records and failures cleared."""
    return _openai_service.reset()
