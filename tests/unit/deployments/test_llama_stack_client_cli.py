"""`llama-stack-client`'s own CLI (0.2.12) against the gateway on 127.0.0.1: models and
vector dbs listed, a chat completion answered (inference on remote::vllm in front of the
OpenAI stand-in)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.remote_servers import FakeService


@pytest.fixture(scope="module")
def gateway(
    _openai_service: FakeService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    stack = parse_config(
        {
            "version": "2",
            "image_name": "cli",
            "apis": ["inference", "vector_io"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "vllm",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{_openai_service.url}/v1"},
                    }
                ],
                "vector_io": [{"provider_id": "sqlite-vec", "provider_type": "inline::sqlite-vec"}],
            },
            "models": [
                {"model_id": "served-model", "provider_id": "vllm"},
                {
                    "model_id": "embedder",
                    "provider_id": "vllm",
                    "provider_model_id": "served-model",
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 4},
                },
            ],
            "vector_dbs": [
                {"vector_db_id": "docs", "embedding_model": "embedder", "embedding_dimension": 4}
            ],
            "storage": {"data_dir": str(tmp_path_factory.mktemp("cli"))},
        }
    )
    routers = asyncio.run(build_local_stack(stack))
    app = create_gateway_app(stack, routers)
    service = FakeService(lambda _svc: app).start()
    yield service.url
    service.stop()


def cli(url: str, *args: str) -> str:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llama_stack_client.lib.cli.llama_stack_client",
            "--endpoint",
            url,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_models_and_vector_dbs_list(gateway: str):
    models = cli(gateway, "models", "list")
    assert "served-model" in models and "embedder" in models and "Total models: 2" in models
    assert "docs" in cli(gateway, "vector_dbs", "list")


def test_inference_chat_completion(gateway: str):
    out = cli(
        gateway, "inference", "chat-completion", "--message", "hello", "--model-id", "served-model"
    )
    assert "content='echo: hello'" in out and "stop_reason='end_of_turn'" in out
