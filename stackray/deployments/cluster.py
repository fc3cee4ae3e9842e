"""What the stack runs, for ``GET /v1/stackray/cluster`` (the playground's Cluster tab).

The deployments come from the stack's graph (`stack_graph`), the same plan `build_app`
binds; under Serve each is joined with Serve's own status of it (status, replica states,
message) and the Ray nodes with their CPUs and GPUs. Outside Serve (a stack built in one
process) every deployment reports ``in-process`` and there are no nodes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel, Field

from stackray.runtime.config import StackConfig
from stackray.runtime.graph import GATEWAY, deployment_name, stack_graph

logger = logging.getLogger("stackray.cluster")

IN_PROCESS = "in-process"


class DeploymentStatus(BaseModel):
    """One deployment of the stack's graph."""

    name: str = Field(description="The Serve deployment name (gateway, inference, model-…).")
    kind: str = Field(description="gateway, api, or what a provider deployment holds.")
    api: str | None = Field(default=None, description="The API it serves, if any.")
    calls: list[str] = Field(default_factory=list, description="Deployments it calls.")
    status: str = Field(description="Serve's status (HEALTHY, UPDATING ...) or in-process.")
    replicas: dict[str, int] = Field(
        default_factory=dict, description="Replicas by state (RUNNING, STARTING ...)."
    )
    message: str = Field(default="", description="Serve's message about it.")


class NodeStatus(BaseModel):
    """A Ray node."""

    node_id: str
    address: str
    alive: bool
    cpus: float = 0
    gpus: float = 0


class ClusterStatus(BaseModel):
    """The deployments of the stack and, under Serve, the Ray nodes they run on."""

    serve: bool = Field(description="Whether the stack runs under Ray Serve.")
    application: str | None = Field(default=None, description="The Serve application name.")
    deployments: list[DeploymentStatus]
    nodes: list[NodeStatus] = Field(default_factory=list)


def planned_deployments(stack: StackConfig) -> list[DeploymentStatus]:
    """The graph's deployments, gateway first, each as if it ran in this process."""
    graph = stack_graph(stack)
    server_names = {p.provider_id: p.name for p in graph.providers}
    out = [
        DeploymentStatus(
            name=GATEWAY,
            kind="gateway",
            calls=[n.name for n in graph.apis] + [server_names[p] for p in graph.gateway.servers],
            status=IN_PROCESS,
        )
    ]
    for node in graph.apis:
        out.append(
            DeploymentStatus(
                name=node.name,
                kind="api",
                api=node.api.value if node.api else None,
                calls=[deployment_name(a) for a in node.calls]
                + [server_names[p] for p in node.servers],
                status=IN_PROCESS,
            )
        )
    for provider in graph.providers:
        out.append(
            DeploymentStatus(
                name=provider.name, kind=provider.holds, api=provider.api.value, status=IN_PROCESS
            )
        )
    return out


def _serve_view() -> tuple[str, dict[str, Any], list[NodeStatus]] | None:
    """(application, its deployments' Serve status, Ray nodes) when this process is a
    Serve replica; None otherwise."""
    try:
        from ray import serve

        context = serve.get_replica_context()
    except Exception:
        return None
    import ray

    app_name = str(getattr(context, "app_name", "") or "")
    status = serve.status()
    application = status.applications.get(app_name)
    if application is None and status.applications:
        app_name, application = next(iter(status.applications.items()))
    deployments = dict(application.deployments) if application is not None else {}
    nodes = [
        NodeStatus(
            node_id=str(n.get("NodeID", "")),
            address=str(n.get("NodeManagerAddress", "")),
            alive=bool(n.get("Alive", False)),
            cpus=float(n.get("Resources", {}).get("CPU", 0)),
            gpus=float(n.get("Resources", {}).get("GPU", 0)),
        )
        for n in ray.nodes()
    ]
    return app_name, deployments, nodes


def merge_serve_status(
    planned: list[DeploymentStatus], serve_deployments: dict[str, Any]
) -> list[DeploymentStatus]:
    """`planned` with Serve's status of each deployment (a `DeploymentStatusOverview`:
    ``status``, ``replica_states``, ``message``); one Serve has and the plan lacks is added."""
    out = []
    seen = set()
    for dep in planned:
        live = serve_deployments.get(dep.name)
        seen.add(dep.name)
        if live is None:
            out.append(dep.model_copy(update={"status": "NOT_DEPLOYED"}))
            continue
        out.append(dep.model_copy(update=_live_fields(live)))
    for name, live in serve_deployments.items():
        if name not in seen:
            out.append(DeploymentStatus(name=name, kind="other", **_live_fields(live)))
    return out


def _live_fields(live: Any) -> dict[str, Any]:
    status = getattr(live, "status", "")
    return {
        "status": str(getattr(status, "value", status)),
        "replicas": {
            str(getattr(k, "value", k)): int(v)
            for k, v in (getattr(live, "replica_states", None) or {}).items()
        },
        "message": str(getattr(live, "message", "") or ""),
    }


async def cluster_status(stack: StackConfig) -> ClusterStatus:
    planned = planned_deployments(stack)
    try:
        # serve.status() and ray.nodes() block on the controller and the GCS.
        view = await asyncio.to_thread(_serve_view)
    except Exception as exc:  # the page shows the plan when Serve cannot be asked
        logger.warning("cluster status: %s", exc)
        view = None
    if view is None:
        return ClusterStatus(serve=False, deployments=planned)
    app_name, deployments, nodes = view
    return ClusterStatus(
        serve=True,
        application=app_name,
        deployments=merge_serve_status(planned, deployments),
        nodes=nodes,
    )
