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
    assert set(deps) == {
        "gateway",
        "inference",
        "files",
        "safety",
        "tool-runtime",
        "agents",
        "telemetry",
        "model-transformers",
        "model-sentence-transformers",
        "vector-io",
        "model-faiss",
        "model-chromadb",
        "model-qdrant",
        "model-milvus",
    }
    assert deps["gateway"].ray_actor_options["num_cpus"] == 0
    assert deps["safety"].ray_actor_options["num_cpus"] == 0
    assert deps["agents"].ray_actor_options["num_cpus"] == 0
    assert deps["inference"].ray_actor_options["num_cpus"] == 0
    assert deps["files"].ray_actor_options["num_cpus"] == 0
    assert deps["vector-io"].ray_actor_options["num_cpus"] == 0
    # Embedded databases own their files in one process, with no CPU or GPU reserved.
    for name in ("model-chromadb", "model-qdrant", "model-milvus"):
        assert deps[name].ray_actor_options == {"num_cpus": 0, "num_gpus": 0}
        assert deps[name].num_replicas == 1
    # The faiss index server fits a 2-core machine, and takes a GPU on a GPU cluster.
    assert deps["model-faiss"].ray_actor_options["num_cpus"] == 0
    assert deployments(gpus=True)["model-faiss"].ray_actor_options["num_gpus"] == 1


def test_model_servers_ask_for_a_gpu_only_when_the_cluster_has_one():
    cpu = deployments(gpus=False)["model-transformers"].ray_actor_options
    gpu = deployments(gpus=True)["model-transformers"].ray_actor_options
    assert "num_gpus" not in cpu or not cpu["num_gpus"]
    assert gpu["num_gpus"] == 1


def test_config_options_reach_serve():
    deps = deployments(
        gpus=True,
        overrides={
            "inference": {
                "autoscaling_config": {"min_replicas": 1, "max_replicas": 5},
                "max_ongoing_requests": 7,
            },
            "transformers": {"ray_actor_options": {"num_gpus": 0.5, "accelerator_type": "L4"}},
        },
    )
    inference = deps["inference"]
    assert inference._deployment_config.autoscaling_config.max_replicas == 5
    assert inference._deployment_config.max_ongoing_requests == 7
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
    assert {d.name for d in built.deployments} == {"gateway", "inference"}


def test_api_deployments_are_bound_in_dependency_order(monkeypatch):
    """A router that calls another API gets that API's deployment; deployment names use dashes."""
    from stackray.api.datatypes import Api
    from stackray.runtime import routers
    from stackray.runtime.config import parse_config
    from stackray.runtime.routers import RouterSpec, router_order

    monkeypatch.setitem(
        routers.ROUTERS,
        Api.vector_io,
        RouterSpec("stackray.runtime.stack:build_router", dependencies=(Api.inference,)),
    )
    raw = {"version": 2, "image_name": "t", "apis": ["vector_io", "inference"]}
    stack = parse_config(raw)
    assert router_order(stack) == [Api.inference, Api.vector_io]
    built = build_serve_app(build_app_from_config(stack, raw, gpus=False), name="stackray")
    assert {d.name for d in built.deployments} == {"gateway", "inference", "vector-io"}


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
        RouterSpec("stackray.runtime.stack:build_router", dependencies=(Api.inference,)),
    )
    stack = parse_config({"version": 2, "image_name": "t", "apis": ["vector_io"]})
    with pytest.raises(ConfigError, match="needs API.*inference"):
        router_order(stack)


def test_inference_in_gateway_binds_the_model_servers_to_the_gateway():
    """`deployments.inference.in_gateway`: the gateway gets the inference model servers'
    handles; the inference deployment stays (other APIs call it); Serve never sees it."""
    on = deployments(gpus=False, overrides={"inference": {"in_gateway": True, "num_replicas": 2}})
    gateway_args = on["gateway"].init_args
    assert len(gateway_args) == 3
    model_servers = gateway_args[2]
    assert set(model_servers) == {"transformers", "sentence-transformers"}
    assert set(gateway_args[1]) >= {"inference", "vector_io", "safety", "agents"}
    assert "inference" in on and on["inference"].num_replicas == 2
    assert not hasattr(on["inference"]._deployment_config, "in_gateway")

    off = deployments(gpus=False, overrides={"inference": {"in_gateway": False}})
    assert len(off["gateway"].init_args) == 2


def test_in_gateway_is_not_a_serve_option():
    from stackray.runtime.config import DeploymentOptions

    opts = DeploymentOptions(in_gateway=True, num_replicas=3)
    assert opts.to_serve_options() == {"num_replicas": 3}


def test_in_gateway_only_under_inference():
    import pytest

    from stackray.api.errors import ConfigError
    from stackray.runtime.config import parse_config

    with pytest.raises(ConfigError, match=r"deployments: .*safety\.in_gateway"):
        parse_config(
            {
                "version": 2,
                "image_name": "t",
                "apis": ["inference"],
                "deployments": {"safety": {"in_gateway": True}},
            }
        )
