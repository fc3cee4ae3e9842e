"""One local Serve stack shared by every integration test of the session.

It is the `local` distribution with a temporary data directory, a free port, and two
replicas of the inference and vector_io deployments (to prove resources are consistent across replicas).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from stackray.runtime.config import resolve_config_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "SmolLM2-135M-Instruct"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    def __init__(self, base_url: str, data_dir: Path) -> None:
        self.base_url = base_url
        self.data_dir = data_dir

    def client(self):
        from llama_stack_client import LlamaStackClient

        return LlamaStackClient(base_url=self.base_url, timeout=120)

    def openai(self, prefix: str = "/v1/openai/v1"):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url + prefix, api_key="unused", timeout=120, max_retries=0)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=120)


def stack_config(data_dir: Path, port: int) -> dict:
    raw = yaml.safe_load(resolve_config_path("local").read_text())
    raw["storage"] = {"data_dir": str(data_dir)}
    raw["server"] = {"port": port, "host": "127.0.0.1"}
    # Two gateways, each with its own inference router over the model servers: a model
    # registered through one is served by the other at once.
    raw["deployments"]["gateway"] = {"num_replicas": 2}
    raw["deployments"]["vector_io"] = {"num_replicas": 2}
    # The external echo provider: a fast, deterministic second inference provider.
    raw["providers"]["inference"].append(
        {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
    )
    raw["models"].append({"model_id": "echo-model", "provider_id": "echo", "model_type": "llm"})
    return raw


@pytest.fixture(scope="session")
def serve_port() -> Iterator[int]:
    """Ray and Serve for the session (one Serve HTTP port; each stack an application)."""
    import ray
    from ray import serve

    from stackray.deployments.app import cluster_has_gpus

    port = free_port()
    ray.init(include_dashboard=False, num_cpus=4, log_to_driver=False)
    assert not cluster_has_gpus()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, serve_port: int) -> Iterator[Stack]:
    from ray import serve

    from stackray.deployments.app import build_app

    data_dir = tmp_path_factory.mktemp("stack")
    port = serve_port
    started = time.monotonic()
    raw = stack_config(data_dir, port)
    serve.run(build_app({"stack": raw}), name="stackray", route_prefix="/")
    print(f"stack ready in {time.monotonic() - started:.1f}s")
    yield Stack(f"http://127.0.0.1:{port}", data_dir)
