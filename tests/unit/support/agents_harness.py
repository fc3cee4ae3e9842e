"""An in-process stack with the agents API, served over HTTP on 127.0.0.1 for the real
`llama_stack_client` (and its `Agent` helper).

The model is `ScriptedModel` behind `remote::vllm`. Two modes:

- `start_stack`: the agents router on the real inference router, with the stand-ins of
  `agent_standins` for safety, tool runtime and vector IO (or none of them, to test a
  stack that does not serve them). The stand-ins stay for what only they make
  deterministic or observable: a shield whose verdict is a plain word match, a warn-only
  shield, and a record of every tool invocation's exact kwargs.
- `start_real_stack`: the whole stack built by `build_local_stack`, every router real:
  inference (the scripted model, and all-MiniLM-L6-v2 embeddings in-process with
  `inline::sentence-transformers`), vector IO (`inline::faiss`), safety
  (`inline::code-scanner`), tool runtime (`inline::rag-runtime` = `builtin::rag`, and
  `remote::model-context-protocol`) and agents.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackray.api.datatypes import Api
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.calls import ApiClient, local_client
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.routers import build_router
from stackray.runtime.routers.inference import build_router as build_inference_router
from tests.unit.support.agent_standins import StandInSafety, StandInToolRuntime, StandInVectorIO
from tests.unit.support.remote_servers import FakeService
from tests.unit.support.scripted_model import ScriptedModel

MODEL = "scripted-model"
EMBEDDING_MODEL = "embed"
REAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
CODE_SHIELD = "code-scanner"


def stack_config(
    model: ScriptedModel,
    data_dir: Path,
    agents_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "agents-test",
        "apis": ["inference", "agents"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{model.url}/v1", "retry_backoff_s": 0.01},
                }
            ],
            "agents": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": agents_config or {},
                }
            ],
        },
        "models": [
            {"model_id": MODEL, "provider_id": "vllm", "provider_model_id": "scripted"},
            {
                "model_id": EMBEDDING_MODEL,
                "provider_id": "vllm",
                "provider_model_id": "scripted-embed",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 4},
            },
        ],
        "storage": {"data_dir": str(data_dir)},
    }


@dataclass
class AgentsStack:
    server: FakeService
    agents: Any
    safety: StandInSafety | None
    tools: StandInToolRuntime | None
    vector_io: StandInVectorIO | None
    routers: dict[str, ApiClient] = field(default_factory=dict)
    """A client of every API of the stack by name (`start_real_stack`)."""
    closed: bool = field(default=False)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> Any:
        from llama_stack_client import LlamaStackClient

        return LlamaStackClient(base_url=self.url, timeout=30, max_retries=0)

    def close(self) -> None:
        if not self.closed:
            self.server.stop()
            self.agents.close()
            for name, client in self.routers.items():
                close = getattr(getattr(client.transport, "target", None), "close", None)
                if name != "agents" and close is not None:
                    close()
            self.closed = True


async def _build(config: dict[str, Any], standins: bool) -> tuple[Any, Any, dict[Api, Any]]:
    stack = parse_config(config)
    inference = await build_inference_router(stack, {})
    deps: dict[Api, Any] = {Api.inference: inference}
    if standins:
        vector_io = StandInVectorIO()
        deps[Api.vector_io] = vector_io
        deps[Api.tool_runtime] = StandInToolRuntime(vector_io)
        deps[Api.safety] = StandInSafety()
    clients = {api: local_client(target, api.value) for api, target in deps.items()}
    agents = await build_router(stack, Api.agents, clients)
    return stack, agents, deps


def start_stack(
    model: ScriptedModel,
    data_dir: Path,
    *,
    standins: bool = True,
    agents_config: dict[str, Any] | None = None,
) -> AgentsStack:
    config = stack_config(model, data_dir, agents_config)
    stack, agents, deps = asyncio.run(_build(config, standins))
    backends = {
        "inference": local_client(deps[Api.inference], "inference"),
        "agents": local_client(agents, "agents"),
    }
    tools = deps.get(Api.tool_runtime)
    if tools is not None:
        # The `Agent` helper lists each toolgroup's tools at GET /v1/tools.
        backends["tool_runtime"] = local_client(tools, "tool_runtime")
    app = create_gateway_app(stack, backends)
    server = FakeService(lambda _svc: app).start()
    return AgentsStack(
        server=server,
        agents=agents,
        safety=deps.get(Api.safety),
        tools=tools,
        vector_io=deps.get(Api.vector_io),
    )


def real_stack_config(
    model: ScriptedModel, data_dir: Path, agents_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "agents-real-test",
        "apis": ["inference", "vector_io", "safety", "tool_runtime", "agents"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{model.url}/v1", "retry_backoff_s": 0.01},
                },
                {
                    "provider_id": "sentence-transformers",
                    "provider_type": "inline::sentence-transformers",
                    "config": {"num_threads": 2},
                },
            ],
            "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
            "safety": [{"provider_id": "code-scanner", "provider_type": "inline::code-scanner"}],
            "tool_runtime": [
                {"provider_id": "rag-runtime", "provider_type": "inline::rag-runtime"},
                {"provider_id": "mcp", "provider_type": "remote::model-context-protocol"},
            ],
            "agents": [
                {
                    "provider_id": "meta-reference",
                    "provider_type": "inline::meta-reference",
                    "config": agents_config or {},
                }
            ],
        },
        "models": [
            {"model_id": MODEL, "provider_id": "vllm", "provider_model_id": "scripted"},
            {
                "model_id": REAL_EMBEDDING_MODEL,
                "provider_id": "sentence-transformers",
                "provider_model_id": "sentence-transformers/all-MiniLM-L6-v2",
                "model_type": "embedding",
                "metadata": {"embedding_dimension": 384},
            },
        ],
        "shields": [{"shield_id": CODE_SHIELD, "provider_id": "code-scanner"}],
        "tool_groups": [{"toolgroup_id": "builtin::rag", "provider_id": "rag-runtime"}],
        "storage": {"data_dir": str(data_dir)},
    }


def start_real_stack(
    model: ScriptedModel, data_dir: Path, *, agents_config: dict[str, Any] | None = None
) -> AgentsStack:
    """The whole stack with every router real (`build_local_stack`), on loopback."""
    stack = parse_config(real_stack_config(model, data_dir, agents_config))
    routers = asyncio.run(build_local_stack(stack))
    app = create_gateway_app(stack, routers)
    server = FakeService(lambda _svc: app).start()
    return AgentsStack(
        server=server,
        agents=routers["agents"],
        safety=None,
        tools=None,
        vector_io=None,
        routers=routers,
    )
