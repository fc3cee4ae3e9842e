"""Calls across a Serve handle: a read whose replica died is sent again, a write is not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stackray.deployments import handles
from stackray.deployments.handles import HandleTransport, is_read


class ActorDiedError(Exception):
    """Named as Ray's: a replica that died under the call."""


class _Remote:
    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[Any, ...]] = []

    async def remote(self, *args: Any) -> Any:
        self.calls.append(args)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class _Handle:
    def __init__(self, outcomes: list[Any]) -> None:
        self.call_api = _Remote(outcomes)

    def options(self, **kwargs: Any) -> _Handle:
        return self


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(handles, "RETRY_PAUSE_S", 0.0)


def test_a_read_is_sent_again_when_its_replica_died():
    handle = _Handle([ActorDiedError("replica gone"), "the model"])
    assert asyncio.run(HandleTransport(handle).call("get_model", "m")) == "the model"
    assert len(handle.call_api.calls) == 2


def test_a_read_gives_up_after_its_attempts():
    handle = _Handle([ActorDiedError("gone")] * handles.READ_ATTEMPTS)
    with pytest.raises(ActorDiedError):
        asyncio.run(HandleTransport(handle).call("list_models"))
    assert len(handle.call_api.calls) == handles.READ_ATTEMPTS


def test_a_write_is_not_sent_twice():
    handle = _Handle([ActorDiedError("gone"), "registered twice"])
    with pytest.raises(ActorDiedError):
        asyncio.run(HandleTransport(handle).call("register_model", {"model_id": "m"}))
    assert len(handle.call_api.calls) == 1


def test_an_error_of_the_callee_is_not_retried():
    handle = _Handle([ValueError("bad request"), "never"])
    with pytest.raises(ValueError):
        asyncio.run(HandleTransport(handle).call("get_model", "m"))
    assert len(handle.call_api.calls) == 1


def test_reads_and_writes():
    reads = [
        "get_model",
        "list_vector_dbs",
        "query_chunks",
        "health",
        "openai_list_files_in_vector_store",
        "embeddings",
    ]
    writes = [
        "register_model",
        "insert_chunks",
        "create_agent_turn",
        "openai_create_vector_store",
        "upload_file",
        "chat_completion",
    ]
    assert all(is_read(m) for m in reads)
    assert not any(is_read(m) for m in writes)
