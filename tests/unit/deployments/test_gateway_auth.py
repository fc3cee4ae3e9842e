"""Authentication and access control at the HTTP surface, over an in-process stack (no
Ray): api keys for two users and an admin, models and vector dbs (echo inference, faiss),
the 401 answers, and a 404 for another's resource that reads exactly like a missing one."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack

KEYS = {
    "alice": "alice-key-0123456789abcdef",
    "bob": "bob-key-0123456789abcdef",
    "admin": "admin-key-0123456789abcdef",
}
ALL = ["create", "read", "update", "delete"]


def config(tmp_path: Any, access_policy: list[dict[str, Any]] | None = None) -> Any:
    auth: dict[str, Any] = {
        "provider_type": "api_key",
        "config": {
            "keys": [
                {"key": KEYS["alice"], "principal": "alice", "attributes": {"roles": ["alice"]}},
                {"key": KEYS["bob"], "principal": "bob", "attributes": {"roles": ["bob"]}},
                {"key": KEYS["admin"], "principal": "root", "attributes": {"roles": ["admin"]}},
            ]
        },
    }
    if access_policy is not None:
        auth["access_policy"] = access_policy
    return parse_config(
        {
            "version": 2,
            "image_name": "auth-gw",
            "apis": ["inference", "vector_io", "files", "agents", "tool_runtime"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "echo",
                        "provider_type": "remote::echo",
                        "module": "stackray_echo",
                    }
                ],
                "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
                "files": [{"provider_id": "localfs", "provider_type": "inline::localfs"}],
                "agents": [{"provider_id": "meta", "provider_type": "inline::meta-reference"}],
                "tool_runtime": [
                    {"provider_id": "mcp", "provider_type": "remote::model-context-protocol"}
                ],
            },
            "models": [
                {"model_id": "shared-llm", "provider_id": "echo"},
                {
                    "model_id": "echo-embed",
                    "provider_id": "echo",
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 8},
                },
            ],
            "server": {"auth": auth},
            "storage": {"data_dir": str(tmp_path)},
        }
    )


ADMIN_POLICY = [
    {"permit": {"actions": ALL}, "when": "user with admin in roles", "description": "admins"},
    {"permit": {"actions": ALL}, "when": ["user in owners roles"], "description": "owners"},
]


class Caller:
    def __init__(self, client: TestClient, who: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {KEYS[who]}"} if who else {}

    def __getattr__(self, method: str) -> Any:
        def call(path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
            return getattr(self.client, method)(path, headers=headers or self.headers, **kwargs)

        return call


@pytest.fixture(params=["default", "admin-rule"])
def stack(request, tmp_path):
    policy = None if request.param == "default" else ADMIN_POLICY
    cfg = config(tmp_path, policy)
    routers = asyncio.run(build_local_stack(cfg))
    with TestClient(create_gateway_app(cfg, routers)) as client:
        yield (
            request.param,
            {who: Caller(client, who) for who in KEYS} | {"anonymous": Caller(client, None)},
        )


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["identifier"] for item in response.json()["data"]}


def same_as_missing(theirs: Any, missing: Any, their_id: str, missing_id: str) -> None:
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text.replace(their_id, "ID") == missing.text.replace(missing_id, "ID")


# ---- authentication --------------------------------------------------------------------


def test_no_or_bad_credentials_get_401_with_a_challenge(stack, caplog):
    _, users = stack
    anonymous = users["anonymous"]
    caplog.set_level(logging.INFO, logger="stackray.gateway")
    for response in (
        anonymous.get("/v1/models"),
        anonymous.get("/v1/models", headers={"Authorization": "Bearer wrong-key-0123456789"}),
        anonymous.get("/v1/providers", headers={"Authorization": "Basic YWxpY2U6eA=="}),
        anonymous.post("/v1/vector-io/query", json={}),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer realm="llama-stack"')
        assert response.json()["error"]["message"] == "missing or invalid credentials"
    bad = anonymous.get("/v1/models", headers={"Authorization": "Bearer wrong-key-0123456789"})
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    # The reason is logged for the operator; the key is not.
    assert "unknown API key" in caplog.text
    assert "wrong-key-0123456789" not in caplog.text


def test_health_and_version_stay_open(stack):
    _, users = stack
    assert users["anonymous"].get("/v1/health").status_code == 200
    assert users["anonymous"].get("/v1/version").status_code == 200
    assert users["alice"].get("/v1/models").status_code == 200


# ---- models ----------------------------------------------------------------------------


def test_models_of_one_user_are_invisible_to_another(stack):
    mode, users = stack
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    r = alice.post("/v1/models", json={"model_id": "alice-llm", "provider_id": "echo"})
    assert r.status_code == 200, r.text
    assert "owner" not in r.json()  # the contract's Model has no owner field
    assert ids(alice.get("/v1/models")) == {"shared-llm", "echo-embed", "alice-llm"}
    assert ids(bob.get("/v1/models")) == {"shared-llm", "echo-embed"}
    openai_ids = {m["id"] for m in bob.get("/v1/openai/v1/models").json()["data"]}
    assert "alice-llm" not in openai_ids
    same_as_missing(
        bob.get("/v1/models/alice-llm"), bob.get("/v1/models/nope"), "alice-llm", "nope"
    )
    same_as_missing(
        bob.delete("/v1/models/alice-llm"), bob.delete("/v1/models/nope"), "alice-llm", "nope"
    )
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    theirs = bob.post("/v1/inference/chat-completion", json={"model_id": "alice-llm", **chat})
    missing = bob.post("/v1/inference/chat-completion", json={"model_id": "nope", **chat})
    same_as_missing(theirs, missing, "alice-llm", "nope")
    r = bob.post(
        "/v1/chat/completions", json={"model": "alice-llm", **chat}
    )  # the OpenAI route too
    assert r.status_code == 404
    ok = alice.post("/v1/inference/chat-completion", json={"model_id": "alice-llm", **chat})
    assert ok.status_code == 200
    # Bob cannot take alice's id (ids are one namespace), and says so without detail.
    taken = bob.post("/v1/models", json={"model_id": "alice-llm", "provider_id": "echo"})
    assert taken.status_code == 409
    assert "alice" not in taken.text.replace("alice-llm", "")
    if mode == "admin-rule":
        assert "alice-llm" in ids(admin.get("/v1/models"))
        assert admin.delete("/v1/models/alice-llm").status_code == 200
        assert alice.get("/v1/models/alice-llm").status_code == 404
    else:  # the default policy has no admin: attributes decide
        assert "alice-llm" not in ids(admin.get("/v1/models"))
        assert alice.delete("/v1/models/alice-llm").status_code == 200


# ---- vector dbs ------------------------------------------------------------------------


def test_vector_dbs_of_one_user_are_invisible_to_another(stack):
    mode, users = stack
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    r = alice.post(
        "/v1/vector-dbs", json={"vector_db_id": "alice-docs", "embedding_model": "echo-embed"}
    )
    assert r.status_code == 200, r.text
    chunk = {"content": "the secret plan", "metadata": {"document_id": "d1"}}
    r = alice.post("/v1/vector-io/insert", json={"vector_db_id": "alice-docs", "chunks": [chunk]})
    assert r.status_code == 200, r.text
    query = {"query": "plan"}
    assert alice.post("/v1/vector-io/query", json={"vector_db_id": "alice-docs", **query}).json()[
        "chunks"
    ]
    assert ids(bob.get("/v1/vector-dbs")) == set()
    same_as_missing(
        bob.post("/v1/vector-io/query", json={"vector_db_id": "alice-docs", **query}),
        bob.post("/v1/vector-io/query", json={"vector_db_id": "nope", **query}),
        "alice-docs",
        "nope",
    )
    same_as_missing(
        bob.post("/v1/vector-io/insert", json={"vector_db_id": "alice-docs", "chunks": [chunk]}),
        bob.post("/v1/vector-io/insert", json={"vector_db_id": "nope", "chunks": [chunk]}),
        "alice-docs",
        "nope",
    )
    same_as_missing(
        bob.delete("/v1/vector-dbs/alice-docs"),
        bob.delete("/v1/vector-dbs/nope"),
        "alice-docs",
        "nope",
    )
    # Alice's data is untouched by bob's tries.
    hits = alice.post("/v1/vector-io/query", json={"vector_db_id": "alice-docs", **query})
    assert [c["content"] for c in hits.json()["chunks"]] == ["the secret plan"]
    if mode == "admin-rule":
        assert ids(admin.get("/v1/vector-dbs")) == {"alice-docs"}
    else:
        assert ids(admin.get("/v1/vector-dbs")) == set()


# ---- files and OpenAI vector stores ----------------------------------------------------


def upload(caller: Caller, text: str) -> str:
    r = caller.post(
        "/v1/openai/v1/files",
        files={"file": ("notes.txt", text.encode(), "text/plain")},
        data={"purpose": "assistants"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_files_of_one_user_are_invisible_to_another(stack):
    mode, users = stack
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    mine = upload(alice, "alice's diary")
    bobs = upload(bob, "bob's notes")
    listed = {f["id"] for f in bob.get("/v1/openai/v1/files").json()["data"]}
    assert listed == {bobs}
    # A page of one holds one readable file, and the cursor of another's file is refused.
    page = alice.get("/v1/openai/v1/files", params={"limit": 1}).json()
    assert [f["id"] for f in page["data"]] == [mine] and page["has_more"] is False
    assert bob.get("/v1/openai/v1/files", params={"after": mine}).status_code == 400
    missing = "file-" + "0" * 32
    for method, suffix in (("get", ""), ("get", "/content"), ("delete", "")):
        same_as_missing(
            getattr(bob, method)(f"/v1/openai/v1/files/{mine}{suffix}"),
            getattr(bob, method)(f"/v1/openai/v1/files/{missing}{suffix}"),
            mine,
            missing,
        )
    assert alice.get(f"/v1/openai/v1/files/{mine}/content").text == "alice's diary"
    # Bob cannot put alice's file into a vector store of his.
    vs = bob.post(
        "/v1/openai/v1/vector_stores", json={"name": "b", "embedding_model": "echo-embed"}
    )
    assert vs.status_code == 200, vs.text
    attach = bob.post(
        f"/v1/openai/v1/vector_stores/{vs.json()['id']}/files", json={"file_id": mine}
    )
    assert attach.status_code == 404
    if mode == "admin-rule":
        assert admin.get(f"/v1/openai/v1/files/{mine}").status_code == 200


def test_vector_stores_of_one_user_are_invisible_to_another(stack):
    mode, users = stack
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    body = {"name": "alice-store", "embedding_model": "echo-embed"}
    vs = alice.post("/v1/openai/v1/vector_stores", json=body).json()["id"]
    file_id = upload(alice, "the launch code is 1234")
    r = alice.post(f"/v1/openai/v1/vector_stores/{vs}/files", json={"file_id": file_id})
    assert r.status_code == 200, r.text
    assert bob.get("/v1/openai/v1/vector_stores").json()["data"] == []
    assert ids(bob.get("/v1/vector-dbs")) == set()
    missing = "vs_" + "0" * 32
    search = {"query": "launch code"}
    for method, suffix, kwargs in (
        ("get", "", {}),
        ("post", "", {"json": {"name": "mine now"}}),
        ("delete", "", {}),
        ("post", "/search", {"json": search}),
        ("get", "/files", {}),
        ("get", f"/files/{file_id}", {}),
        ("delete", f"/files/{file_id}", {}),
    ):
        same_as_missing(
            getattr(bob, method)(f"/v1/openai/v1/vector_stores/{vs}{suffix}", **kwargs),
            getattr(bob, method)(f"/v1/openai/v1/vector_stores/{missing}{suffix}", **kwargs),
            vs,
            missing,
        )
    # The same routes answer the owner (so the 404s above are the stack's, not routing's).
    for method, suffix, kwargs in (
        ("get", "", {}),
        ("post", "", {"json": {"name": "alice-store"}}),
        ("post", "/search", {"json": search}),
        ("get", "/files", {}),
        ("get", f"/files/{file_id}", {}),
    ):
        r = getattr(alice, method)(f"/v1/openai/v1/vector_stores/{vs}{suffix}", **kwargs)
        assert r.status_code == 200, (suffix, r.text)
    # The vector-io routes over the same id are closed too (the upstream #4393 bypass).
    query = bob.post("/v1/vector-io/query", json={"vector_db_id": vs, "query": "launch code"})
    assert query.status_code == 404
    hits = alice.post(f"/v1/openai/v1/vector_stores/{vs}/search", json=search).json()
    assert hits["data"] and "1234" in hits["data"][0]["content"][0]["text"]
    names = [s["name"] for s in admin.get("/v1/openai/v1/vector_stores").json()["data"]]
    assert names == (["alice-store"] if mode == "admin-rule" else [])


# ---- agents, sessions, turns; stored chat completions and responses --------------------


def test_agents_and_sessions_of_one_user_are_invisible_to_another(stack):
    mode, users = stack
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    config = {"model": "shared-llm", "instructions": "be brief"}
    agent = alice.post("/v1/agents", json={"agent_config": config}).json()["agent_id"]
    session = alice.post(f"/v1/agents/{agent}/session", json={"session_name": "s"}).json()[
        "session_id"
    ]
    turn = alice.post(
        f"/v1/agents/{agent}/session/{session}/turn",
        json={"messages": [{"role": "user", "content": "hello"}], "stream": False},
    )
    assert turn.status_code == 200, turn.text
    turn_id = turn.json()["turn_id"]
    assert [a["agent_id"] for a in alice.get("/v1/agents").json()["data"]] == [agent]
    assert bob.get("/v1/agents").json()["data"] == []
    missing = "0" * 32
    message = {"messages": [{"role": "user", "content": "hi"}], "stream": False}
    for method, path, kwargs in (
        ("get", "/v1/agents/{a}", {}),
        ("delete", "/v1/agents/{a}", {}),
        ("post", "/v1/agents/{a}/session", {"json": {"session_name": "mine"}}),
        ("get", "/v1/agents/{a}/sessions", {}),
    ):
        same_as_missing(
            getattr(bob, method)(path.format(a=agent), **kwargs),
            getattr(bob, method)(path.format(a=missing), **kwargs),
            agent,
            missing,
        )
    # Bob's own session cannot reach into alice's, nor read her turn.
    for method, path, kwargs in (
        ("get", f"/v1/agents/{agent}/session/{{s}}", {}),
        ("delete", f"/v1/agents/{agent}/session/{{s}}", {}),
        ("post", f"/v1/agents/{agent}/session/{{s}}/turn", {"json": message}),
        ("get", f"/v1/agents/{agent}/session/{{s}}/turn/{turn_id}", {}),
    ):
        theirs = getattr(bob, method)(path.format(s=session), **kwargs)
        assert theirs.status_code == 404, (path, theirs.text)
        assert "alice" not in theirs.text
    if mode == "admin-rule":
        assert [a["agent_id"] for a in admin.get("/v1/agents").json()["data"]] == [agent]
        assert admin.get(f"/v1/agents/{agent}/session/{session}").status_code == 200
    else:
        assert admin.get(f"/v1/agents/{agent}").status_code == 404


def test_stored_chat_completions_and_responses_are_the_callers(stack):
    mode, users = stack
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    chat = {"model": "shared-llm", "messages": [{"role": "user", "content": "private words"}]}
    done = alice.post("/v1/openai/v1/chat/completions", json=chat)
    assert done.status_code == 200, done.text
    completion = done.json()["id"]
    bobs = bob.post("/v1/openai/v1/chat/completions", json=chat).json()["id"]
    listed = [c["id"] for c in bob.get("/v1/openai/v1/chat/completions").json()["data"]]
    assert listed == [bobs]
    got = alice.get(f"/v1/openai/v1/chat/completions/{completion}")
    assert got.status_code == 200 and "__owner__" not in got.text
    same_as_missing(
        bob.get(f"/v1/openai/v1/chat/completions/{completion}"),
        bob.get("/v1/openai/v1/chat/completions/chatcmpl-missing"),
        completion,
        "chatcmpl-missing",
    )
    assert (
        bob.get("/v1/openai/v1/chat/completions", params={"after": completion}).status_code == 404
    )

    made = alice.post("/v1/openai/v1/responses", json={"model": "shared-llm", "input": "secret"})
    assert made.status_code == 200, made.text
    response = made.json()["id"]
    assert bob.get("/v1/openai/v1/responses").json()["data"] == []
    for path in ("/v1/openai/v1/responses/{r}", "/v1/openai/v1/responses/{r}/input_items"):
        same_as_missing(
            bob.get(path.format(r=response)),
            bob.get(path.format(r="resp_missing")),
            response,
            "resp_missing",
        )
    # Continuing alice's conversation is refused like a missing one.
    follow = {"model": "shared-llm", "input": "go on", "previous_response_id": response}
    assert bob.post("/v1/openai/v1/responses", json=follow).status_code == 404
    assert alice.post("/v1/openai/v1/responses", json=follow).status_code == 200
    seen = [r["id"] for r in admin.get("/v1/openai/v1/responses").json()["data"]]
    assert (response in seen) is (mode == "admin-rule")


# ---- tool groups and their tools ---------------------------------------------------------


def test_tool_groups_and_their_tools_are_the_owners(stack, mcp_server):
    mode, users = stack
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    group = {
        "toolgroup_id": "mcp::alice",
        "provider_id": "mcp",
        "mcp_endpoint": {"uri": mcp_server.http_url},
    }
    assert alice.post("/v1/toolgroups", json=group).status_code == 200
    add = {"tool_name": "add", "kwargs": {"a": 1, "b": 2}}
    assert alice.post("/v1/tool-runtime/invoke", json=add).json()["content"][0]["text"] == "3"
    assert "add" in {t["identifier"] for t in alice.get("/v1/tools").json()["data"]}

    assert ids(bob.get("/v1/toolgroups")) == set()
    assert bob.get("/v1/tools").json()["data"] == []
    for method, path, kwargs in (
        ("get", "/v1/toolgroups/{g}", {}),
        ("delete", "/v1/toolgroups/{g}", {}),
        ("get", "/v1/tools", {"params": {"toolgroup_id": "{g}"}}),
    ):

        def fill(value: Any, g: str) -> Any:
            return (
                {k: v.format(g=g) for k, v in value.items()} if isinstance(value, dict) else value
            )

        theirs = getattr(bob, method)(
            path.format(g="mcp::alice"), **{k: fill(v, "mcp::alice") for k, v in kwargs.items()}
        )
        missing = getattr(bob, method)(
            path.format(g="mcp::none"), **{k: fill(v, "mcp::none") for k, v in kwargs.items()}
        )
        same_as_missing(theirs, missing, "mcp::alice", "mcp::none")
    same_as_missing(bob.get("/v1/tools/add"), bob.get("/v1/tools/nope"), "add", "nope")
    theirs = bob.post("/v1/tool-runtime/invoke", json=add)
    missing = bob.post("/v1/tool-runtime/invoke", json={"tool_name": "nope", "kwargs": {}})
    same_as_missing(theirs, missing, "add", "nope")
    if mode == "admin-rule":
        assert ids(admin.get("/v1/toolgroups")) == {"mcp::alice"}
    assert alice.delete("/v1/toolgroups/mcp::alice").status_code == 200


# ---- an agent's RAG tool runs as the user of the turn ----------------------------------


@pytest.fixture()
def scripted(tmp_path):
    from tests.unit.support.scripted_model import ScriptedModel

    model = ScriptedModel().start()
    cfg = config(tmp_path)
    raw: dict[str, Any] = {
        "version": 2,
        "image_name": "auth-agents",
        "apis": ["inference", "vector_io", "tool_runtime", "agents"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{model.url}/v1", "retry_backoff_s": 0.01},
                },
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"},
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
            "tool_runtime": [{"provider_id": "rag", "provider_type": "inline::rag-runtime"}],
            "agents": [{"provider_id": "meta", "provider_type": "inline::meta-reference"}],
        },
        "models": [
            {"model_id": "scripted-model", "provider_id": "vllm", "provider_model_id": "scripted"},
            {
                "model_id": "echo-embed",
                "provider_id": "echo",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 8},
            },
        ],
        "tool_groups": [{"toolgroup_id": "builtin::rag", "provider_id": "rag"}],
        "server": {"auth": cfg.server.auth.model_dump(mode="json")},
        "storage": {"data_dir": str(tmp_path / "agents")},
    }
    stack = parse_config(raw)
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as client:
        yield model, {who: Caller(client, who) for who in ("alice", "bob")}
    model.stop()


def test_an_agents_rag_tool_cannot_read_another_users_vector_db(scripted):
    from tests.unit.support.scripted_model import Reply

    model, users = scripted
    alice, bob = users["alice"], users["bob"]
    db = {"vector_db_id": "alice-kb", "embedding_model": "echo-embed"}
    assert alice.post("/v1/vector-dbs", json=db).status_code == 200
    chunk = {"content": "The vault code is 4242.", "metadata": {"document_id": "vault"}}
    r = alice.post("/v1/vector-io/insert", json={"vector_db_id": "alice-kb", "chunks": [chunk]})
    assert r.status_code == 200, r.text

    def turn_of(caller: Caller) -> dict[str, Any]:
        tools = [{"name": "builtin::rag/knowledge_search", "args": {"vector_db_ids": ["alice-kb"]}}]
        agent_config = {"model": "scripted-model", "instructions": "x", "toolgroups": tools}
        agent = caller.post("/v1/agents", json={"agent_config": agent_config})
        assert agent.status_code == 200, agent.text
        agent_id = agent.json()["agent_id"]
        session = caller.post(f"/v1/agents/{agent_id}/session", json={"session_name": "s"})
        model.play(Reply(tool_calls=[("knowledge_search", {"query": "vault code"})]))
        turn = caller.post(
            f"/v1/agents/{agent_id}/session/{session.json()['session_id']}/turn",
            json={"messages": [{"role": "user", "content": "the code?"}], "stream": False},
        )
        assert turn.status_code == 200, turn.text
        return dict(turn.json())

    mine = turn_of(alice)
    assert "4242" in json.dumps(mine["steps"][1])  # the tool found alice's chunk
    model.reset()
    theirs = turn_of(bob)
    tool_step = theirs["steps"][1]
    assert tool_step["step_type"] == "tool_execution"
    assert "4242" not in json.dumps(theirs)
    assert "not found" in json.dumps(tool_step["tool_responses"])
    # Nor did the model see it.
    assert all("4242" not in json.dumps(chat) for chat in model.chats)


# ---- datasets (the registry's other kinds) ------------------------------------------------


def test_datasets_of_one_user_are_invisible_to_another(tmp_path):
    raw: dict[str, Any] = {
        "version": 2,
        "image_name": "auth-datasets",
        "apis": ["datasetio"],
        "providers": {
            "datasetio": [{"provider_id": "localfs", "provider_type": "inline::localfs"}]
        },
        "server": {"auth": config(tmp_path).server.auth.model_dump(mode="json")},
        "storage": {"data_dir": str(tmp_path / "datasets")},
    }
    stack = parse_config(raw)
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as client:
        alice, bob = Caller(client, "alice"), Caller(client, "bob")
        rows = [{"input_query": "2+2?", "expected_answer": "4", "chat_completion_input": "[]"}]
        body = {
            "dataset_id": "alice-qa",
            "purpose": "eval/question-answer",
            "source": {"type": "rows", "rows": rows},
        }
        r = alice.post("/v1/datasets", json=body)
        assert r.status_code == 200, r.text
        assert ids(bob.get("/v1/datasets")) == set()
        for method, path in (
            ("get", "/v1/datasets/{d}"),
            ("delete", "/v1/datasets/{d}"),
            ("get", "/v1/datasetio/iterrows/{d}"),
        ):
            same_as_missing(
                getattr(bob, method)(path.format(d="alice-qa")),
                getattr(bob, method)(path.format(d="nope")),
                "alice-qa",
                "nope",
            )
        # Taking alice's id is a 409 that says nothing of her (not a loop, not a 500).
        taken = bob.post("/v1/datasets", json=body)
        assert taken.status_code == 409 and "alice" not in taken.text.replace("alice-qa", "")
        assert (
            alice.get("/v1/datasetio/iterrows/alice-qa").json()["data"][0]["expected_answer"] == "4"
        )


def test_the_playground_page_is_open_and_its_calls_are_not(stack):
    _, users = stack
    anonymous = users["anonymous"]
    page = anonymous.get("/playground")
    assert page.status_code == 200 and 'id="api-token"' in page.text
    assert anonymous.get("/playground/static/playground.js").status_code == 200
    # What the page then calls needs the caller's token, which it sends when given.
    assert anonymous.get("/v1/inspect/routes").status_code == 401
    assert users["alice"].get("/v1/inspect/routes").status_code == 200
    # No path under /playground reaches an API.
    assert anonymous.get("/playground/../v1/models").status_code in (401, 404)
