"""Llama Stack 0.2.12's agents stores: `persistence_store` holds agents and sessions,
`responses_store` the stored OpenAI responses, each in the file it names (the real
`openai` and `llama_stack_client` SDKs over HTTP, the scripted model behind remote::vllm)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.unit.support.agents_harness import MODEL, start_stack
from tests.unit.support.scripted_model import ScriptedModel


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    model = ScriptedModel().start()
    yield model
    model.stop()


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if table not in names:
            return -1
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def test_persistence_and_responses_stores_hold_their_data_where_they_say(
    model: ScriptedModel, tmp_path: Path
) -> None:
    agents_db = tmp_path / "stores" / "agents_store.db"
    responses_db = tmp_path / "stores" / "responses_store.db"
    stack = start_stack(
        model.reset(),
        tmp_path / "data",
        agents_config={
            "persistence_store": {"type": "sqlite", "namespace": None, "db_path": str(agents_db)},
            "responses_store": {"type": "sqlite", "db_path": str(responses_db)},
        },
    )
    try:
        oai = openai.OpenAI(base_url=f"{stack.url}/v1/openai/v1", api_key="x", max_retries=0)
        response = oai.responses.create(model=MODEL, input="hello")
        client = stack.client()
        agent = client.agents.create(agent_config={"model": MODEL, "instructions": "Be brief."})
        client.agents.session.create(agent.agent_id, session_name="s")
    finally:
        stack.close()
    assert rows(responses_db, "openai_responses") == 1
    assert rows(agents_db, "openai_responses") in (-1, 0)
    assert rows(agents_db, "agents") == 1 and rows(agents_db, "agent_sessions") == 1
    assert not (tmp_path / "data" / "agents_store.db").exists()
    # The stored response is read back from its store after a restart.
    again = start_stack(
        model,
        tmp_path / "data",
        agents_config={
            "persistence_store": {"type": "sqlite", "db_path": str(agents_db)},
            "responses_store": {"type": "sqlite", "db_path": str(responses_db)},
        },
    )
    try:
        oai = openai.OpenAI(base_url=f"{again.url}/v1/openai/v1", api_key="x", max_retries=0)
        assert oai.responses.retrieve(response.id).output_text == "echo: hello"
    finally:
        again.close()
