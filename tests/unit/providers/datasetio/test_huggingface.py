"""`remote::huggingface`: its URIs, and a hub that fails or does not answer.

The hub is a stub on 127.0.0.1 named by HF_ENDPOINT, which the `datasets` library reads
when it is imported: each case runs the provider in a fresh Python process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from stackray.api.errors import BadRequestError
from stackray.providers.remote.datasetio.huggingface.adapter import parse_hf_uri
from tests.unit.support.remote_servers import FakeService

REPO = Path(__file__).resolve().parents[4]


def test_uris_name_the_dataset_and_the_load_arguments():
    assert parse_hf_uri("huggingface://datasets/llamastack/simpleqa?split=train") == (
        "llamastack/simpleqa",
        {"split": "train"},
    )
    # The contract's example form, and the default split.
    assert parse_hf_uri("huggingface://llamastack/simpleqa") == (
        "llamastack/simpleqa",
        {"split": "train"},
    )
    assert parse_hf_uri("huggingface://datasets/org/ds?split=test&name=en&revision=v1") == (
        "org/ds",
        {"split": "test", "name": "en", "revision": "v1"},
    )
    for bad, why in (
        ("huggingface://datasets/?split=train", "names no dataset"),
        ("huggingface://datasets/org/ds?limit=3", "unknown parameter 'limit'"),
        ("huggingface://datasets/org/ds?split=", "needs one value"),
        ("huggingface://datasets/../etc?split=train", "names no dataset"),
        ("https://huggingface.co/datasets/org/ds", "not a huggingface:// URI"),
    ):
        with pytest.raises(BadRequestError, match=why) as info:
            parse_hf_uri(bad)
        assert info.value.field == "source.uri"


def hub_app(service: FakeService) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "HEAD", "POST"])
    async def anything(path: str, request: Request) -> Response:
        service.requests.append(path)  # type: ignore[arg-type]
        if service.required_key == "hang":  # answers only after the client gave up
            await asyncio.sleep(30)
        return Response(status_code=404, content=b'{"error": "Repository not found"}')

    return app


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeService]:
    service = FakeService(hub_app).start()
    yield service
    service.stop()


SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from stackray.api.errors import StackError
    from stackray.runtime.config import parse_config
    from stackray.runtime.resolver import provider_context
    from stackray.providers.remote.datasetio.huggingface.adapter import HuggingfaceDatasetIO
    from stackray.providers.remote.datasetio.huggingface.config import HuggingfaceDatasetIOConfig

    data_dir, timeout_s = sys.argv[1], float(sys.argv[2])
    stack = parse_config({"image_name": "hf", "apis": ["datasetio"],
                          "storage": {"data_dir": data_dir}})
    config = HuggingfaceDatasetIOConfig(timeout_s=timeout_s, cache_dir=data_dir + "/cache")
    provider = HuggingfaceDatasetIO(config, {}, provider_context(stack, "huggingface"))
    started = time.monotonic()

    async def main():
        try:
            await provider.load("huggingface://datasets/llamastack/simpleqa?split=train")
            return {"status": 200}
        except StackError as e:
            return {"status": e.status_code, "message": e.message}

    result = asyncio.new_event_loop().run_until_complete(main())
    result["elapsed_s"] = time.monotonic() - started
    print(json.dumps(result), flush=True)
    os._exit(0)  # a timed-out load's thread is still waiting on the hub: do not join it
    """
)


def load_through(hub: FakeService, tmp_path: Path, timeout_s: float) -> dict[str, object]:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DOWNLOAD_TIMEOUT": "3",
        "PYTHONPATH": str(REPO),
    }
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_DATASETS_OFFLINE", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(timeout_s)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_failing_hub_is_a_502_naming_the_hub_and_the_dataset(hub, tmp_path):
    hub.required_key = None
    result = load_through(hub, tmp_path, timeout_s=60)
    assert result["status"] == 502
    message = str(result["message"])
    assert f"Hugging Face Hub ({hub.url})" in message and "'llamastack/simpleqa'" in message
    assert hub.requests, "the library asked the stub hub"


def test_a_hub_that_does_not_answer_is_a_502_within_the_timeout(hub, tmp_path):
    hub.required_key = "hang"
    try:
        result = load_through(hub, tmp_path, timeout_s=1.0)
    finally:
        hub.required_key = None
    assert result["status"] == 502
    assert "did not provide dataset 'llamastack/simpleqa' within 1.0s" in str(result["message"])
    assert float(result["elapsed_s"]) < 5  # type: ignore[arg-type]
