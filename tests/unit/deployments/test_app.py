"""The Serve graph `build_app` produces: deployments, their options, GPU placement."""

from __future__ import annotations

from ray.serve._private.build_app import build_app as build_serve_app

from stackray.deployments.app import build_app_from_config, resolved_config


def deployments(gpus: bool, overrides: dict | None = None) -> dict:
    stack, raw = resolved_config({"config": "local"})
    if overrides:
        raw = {**raw, "deployments": {**raw.get("deployments", {}), **overrides}}
        from stackray.runtime.config import parse_config

        stack = parse_config(raw)
    built = build_serve_app(build_app_from_config(stack, raw, gpus=gpus), name="stackray")
    return {d.name: d for d in built.deployments}


def test_graph_of_local_distribution():
    deps = deployments(gpus=False)
    # No inference deployment: its router runs in the gateway and in each API deployment
    # that calls inference, over the model servers' handles.
    assert set(deps) == {
        "gateway",
        "files",
        "safety",
        "tool-runtime",
        "agents",
        "telemetry",
        "datasetio",
        "scoring",
        "eval",
        "model-transformers",
        "model-sentence-transformers",
        "vector-io",
        "index-faiss",
        "database-chromadb",
        "database-qdrant",
        "database-milvus",
    }
    for name in (
        "gateway",
        "safety",
        "agents",
        "files",
        "vector-io",
        "telemetry",
        "datasetio",
        "scoring",
        "eval",
    ):
        assert deps[name].ray_actor_options["num_cpus"] == 0
    # Embedded databases own their files in one process, with no CPU or GPU reserved.
    for name in ("database-chromadb", "database-qdrant", "database-milvus"):
        assert deps[name].ray_actor_options == {"num_cpus": 0, "num_gpus": 0}
        assert deps[name].num_replicas == 1
    # The faiss index server fits a 2-core machine, and takes a GPU on a GPU cluster.
    assert deps["index-faiss"].ray_actor_options["num_cpus"] == 0
    assert deployments(gpus=True)["index-faiss"].ray_actor_options["num_gpus"] == 1


def test_edges_follow_the_graph():
    """Each deployment is bound to exactly what it calls: the gateway and the deployments
    calling inference get the model servers; vector-io its indexes too."""
    deps = deployments(gpus=False)
    models = {"transformers", "sentence-transformers"}
    _, apis, servers = deps["gateway"].init_args
    assert set(apis) == {
        "files",
        "vector_io",
        "safety",
        "tool_runtime",
        "agents",
        "telemetry",
        "datasetio",
        "scoring",
        "eval",
    }
    assert set(servers) == models
    _, api, calls, servers = deps["vector-io"].init_args
    assert api == "vector_io" and set(calls) == {"files"}
    assert set(servers) == models | {"faiss", "chromadb", "qdrant", "milvus"}
    _, api, calls, servers = deps["agents"].init_args
    assert set(calls) == {"safety", "tool_runtime", "vector_io"} and set(servers) == models
    _, api, calls, servers = deps["files"].init_args
    assert calls == {} and servers == {}
    _, api, provider_id, name = deps["index-faiss"].init_args
    assert (api, provider_id, name) == ("vector_io", "faiss", "index-faiss")


def test_model_servers_ask_for_a_gpu_only_when_the_cluster_has_one():
    cpu = deployments(gpus=False)["model-transformers"].ray_actor_options
    gpu = deployments(gpus=True)["model-transformers"].ray_actor_options
    assert "num_gpus" not in cpu or not cpu["num_gpus"]
    assert gpu["num_gpus"] == 1


def test_config_options_reach_serve():
    deps = deployments(
        gpus=True,
        overrides={
            "gateway": {
                "autoscaling_config": {"min_replicas": 1, "max_replicas": 5},
                "max_ongoing_requests": 7,
            },
            "transformers": {"ray_actor_options": {"num_gpus": 0.5, "accelerator_type": "L4"}},
        },
    )
    gateway = deps["gateway"]
    assert gateway._deployment_config.autoscaling_config.max_replicas == 5
    assert gateway._deployment_config.max_ongoing_requests == 7
    model = deps["model-transformers"].ray_actor_options
    assert model["num_gpus"] == 0.5 and model["accelerator_type"] == "L4"


def test_partial_stack_has_only_its_deployments():
    stack, raw = resolved_config(
        {
            "stack": {
                "version": 2,
                "image_name": "only",
                "apis": ["inference"],
                "providers": {
                    "inference": [
                        {
                            "provider_id": "e",
                            "provider_type": "remote::echo",
                            "module": "stackray_echo",
                        }
                    ]
                },
            }
        }
    )
    built = build_serve_app(build_app_from_config(stack, raw, gpus=False), name="x")
    # A remote provider runs in the gateway's process: nothing else to deploy.
    assert {d.name for d in built.deployments} == {"gateway"}


def test_api_deployments_are_bound_in_dependency_order(monkeypatch):
    """A router that calls another API gets that API's deployment; deployment names use dashes."""
    from stackray.api.datatypes import Api
    from stackray.runtime import routers
    from stackray.runtime.config import parse_config
    from stackray.runtime.routers import RouterSpec, router_order

    monkeypatch.setitem(
        routers.ROUTERS,
        Api.vector_io,
        RouterSpec(
            "stackray.runtime.routers.inference:build_router", dependencies=(Api.inference,)
        ),
    )
    raw = {"version": 2, "image_name": "t", "apis": ["vector_io", "inference"]}
    stack = parse_config(raw)
    assert router_order(stack) == [Api.inference, Api.vector_io]
    built = build_serve_app(build_app_from_config(stack, raw, gpus=False), name="stackray")
    assert {d.name for d in built.deployments} == {"gateway", "vector-io"}


def test_a_missing_dependency_is_a_config_error(monkeypatch):
    import pytest

    from stackray.api.datatypes import Api
    from stackray.api.errors import ConfigError
    from stackray.runtime import routers
    from stackray.runtime.config import parse_config
    from stackray.runtime.routers import RouterSpec, router_order

    monkeypatch.setitem(
        routers.ROUTERS,
        Api.vector_io,
        RouterSpec(
            "stackray.runtime.routers.inference:build_router", dependencies=(Api.inference,)
        ),
    )
    stack = parse_config({"version": 2, "image_name": "t", "apis": ["vector_io"]})
    with pytest.raises(ConfigError, match="needs API.*inference"):
        router_order(stack)
