"""`GET /v1/stackray/cluster`: the stack's deployments from its graph, joined with Serve's
status of each when the gateway runs under Serve (a stand-in of `serve.status()` here;
the shared Serve stack's test reads the real one)."""

from __future__ import annotations

import asyncio
from enum import Enum
from types import SimpleNamespace

from fastapi.testclient import TestClient

from stackray.deployments.cluster import merge_serve_status, planned_deployments
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack


def stack(tmp_path):
    return parse_config(
        {
            "version": 2,
            "image_name": "cluster",
            "apis": ["inference", "vector_io", "files"],
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
            },
            "models": [
                {"model_id": "m", "provider_id": "echo"},
                {
                    "model_id": "e",
                    "provider_id": "echo",
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 8},
                },
            ],
            "storage": {"data_dir": str(tmp_path)},
        }
    )


def test_the_plan_lists_every_deployment_gateway_first(tmp_path):
    planned = {d.name: d for d in planned_deployments(stack(tmp_path))}
    assert list(planned)[0] == "gateway"
    assert set(planned) == {"gateway", "files", "vector-io", "index-faiss"}
    assert planned["vector-io"].calls == ["files", "index-faiss"]
    assert planned["index-faiss"].kind == "index" and planned["index-faiss"].api == "vector_io"
    assert {d.status for d in planned.values()} == {"in-process"}


class _Status(str, Enum):
    HEALTHY = "HEALTHY"
    UPDATING = "UPDATING"


def test_serve_status_is_joined_to_the_plan(tmp_path):
    live = {
        "gateway": SimpleNamespace(
            status=_Status.HEALTHY, replica_states={"RUNNING": 2}, message=""
        ),
        "vector-io": SimpleNamespace(
            status=_Status.UPDATING,
            replica_states={"RUNNING": 1, "STARTING": 1},
            message="Scaling up",
        ),
        "index-faiss": SimpleNamespace(status="HEALTHY", replica_states={}, message=None),
        "leftover": SimpleNamespace(status="HEALTHY", replica_states={"RUNNING": 1}, message=""),
    }
    merged = {d.name: d for d in merge_serve_status(planned_deployments(stack(tmp_path)), live)}
    assert merged["gateway"].status == "HEALTHY" and merged["gateway"].replicas == {"RUNNING": 2}
    assert merged["vector-io"].status == "UPDATING"
    assert merged["vector-io"].replicas == {"RUNNING": 1, "STARTING": 1}
    assert merged["vector-io"].message == "Scaling up"
    assert merged["files"].status == "NOT_DEPLOYED"
    assert merged["leftover"].kind == "other"


def test_the_endpoint_outside_serve(tmp_path):
    s = stack(tmp_path)
    app = create_gateway_app(s, asyncio.run(build_local_stack(s)))
    with TestClient(app) as client:
        body = client.get("/v1/stackray/cluster").json()
        assert body["serve"] is False and body["nodes"] == []
        assert [d["name"] for d in body["deployments"]][0] == "gateway"
        assert "/v1/stackray/cluster" in app.openapi()["paths"]
        assert "/playground" not in app.openapi()["paths"]
        page = client.get("/playground")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert client.get("/playground/static/playground.js").status_code == 200
        assert client.get("/playground/static/../__init__.py").status_code == 404
