"""Authentication and access control on a real Serve stack, through the real
llama-stack-client: JWTs signed by an identity provider on loopback, verified against its
JWKS by the gateway; two users whose vector dbs stay apart across the gateway, vector-io
and tool-runtime deployments (the caller travels with every handle call)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.unit.support.identity_provider import ISSUER, IdentityProvider

PREFIX = "/secured"


def secured_config(data_dir: Any, idp: IdentityProvider) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "secured",
        "apis": ["inference", "vector_io", "tool_runtime"],
        "providers": {
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
            "tool_runtime": [{"provider_id": "rag", "provider_type": "inline::rag-runtime"}],
        },
        "models": [
            {"model_id": "echo-llm", "provider_id": "echo"},
            {
                "model_id": "echo-embed",
                "provider_id": "echo",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 8},
            },
        ],
        "server": {
            "auth": {
                "provider_type": "oauth2_token",
                "config": {
                    "issuer": ISSUER,
                    "jwks": {"uri": f"{idp.url}/jwks.json", "key_recheck_period": 60},
                },
            }
        },
        "storage": {"data_dir": str(data_dir)},
        # One process per API is enough here; nothing asks for CPUs it cannot get.
        "deployments": {"faiss": {"ray_actor_options": {"num_cpus": 0}}},
    }


@pytest.fixture(scope="module")
def secured(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ray import serve

    from stackray.deployments.app import build_app

    idp = IdentityProvider().start()
    raw = secured_config(tmp_path_factory.mktemp("secured"), idp)
    serve.run(build_app({"stack": raw}), name="stackray-secured", route_prefix=PREFIX)
    try:
        yield f"http://127.0.0.1:{serve_port}{PREFIX}", idp
    finally:
        serve.delete("stackray-secured")
        idp.stop()


def client(base_url: str, token: str | None) -> Any:
    from llama_stack_client import LlamaStackClient

    return LlamaStackClient(base_url=base_url, api_key=token, timeout=60, max_retries=0)


def test_requests_without_a_valid_token_get_401(secured):
    import llama_stack_client

    base_url, idp = secured
    with pytest.raises(llama_stack_client.AuthenticationError):
        client(base_url, None).models.list()
    with pytest.raises(llama_stack_client.AuthenticationError):
        client(base_url, idp.sign(exp_in=-60)).models.list()
    with pytest.raises(llama_stack_client.AuthenticationError):
        client(base_url, IdentityProvider.unsigned()).models.list()
    r = httpx.get(f"{base_url}/v1/models", timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{base_url}/v1/health", timeout=30).status_code == 200
    assert httpx.get(f"{base_url}/v1/version", timeout=30).status_code == 200


def test_two_users_vector_dbs_stay_apart_across_deployments(secured):
    import llama_stack_client

    base_url, idp = secured
    alice = client(base_url, idp.sign("alice"))
    bob = client(base_url, idp.sign("bob", kid="key-ec"))
    assert {m.identifier for m in bob.models.list()} == {"echo-llm", "echo-embed"}

    alice.vector_dbs.register(
        vector_db_id="alice-docs", embedding_model="echo-embed", embedding_dimension=8
    )
    alice.vector_io.insert(
        vector_db_id="alice-docs",
        chunks=[{"content": "alice's launch code is 1234", "metadata": {"document_id": "d1"}}],
    )
    assert alice.vector_io.query(vector_db_id="alice-docs", query="launch code").chunks

    assert "alice-docs" not in {v.identifier for v in bob.vector_dbs.list()}
    with pytest.raises(llama_stack_client.NotFoundError):
        bob.vector_dbs.retrieve("alice-docs")
    with pytest.raises(llama_stack_client.NotFoundError):
        bob.vector_io.query(vector_db_id="alice-docs", query="launch code")
    with pytest.raises(llama_stack_client.NotFoundError):
        bob.vector_dbs.unregister("alice-docs")
    # The RAG tool runs in the tool-runtime deployment and queries vector-io through a
    # handle: it does so as the caller, so bob's query fails and alice's finds her chunk.
    with pytest.raises(llama_stack_client.NotFoundError):
        bob.tool_runtime.rag_tool.query(content="launch code", vector_db_ids=["alice-docs"])
    result = alice.tool_runtime.rag_tool.query(content="launch code", vector_db_ids=["alice-docs"])
    assert "1234" in str(result.content)
    # Bob's own vector db is his alone.
    bob.vector_dbs.register(vector_db_id="bob-docs", embedding_model="echo-embed")
    assert "bob-docs" not in {v.identifier for v in alice.vector_dbs.list()}
    assert {v.identifier for v in alice.vector_dbs.list()} == {"alice-docs"}
