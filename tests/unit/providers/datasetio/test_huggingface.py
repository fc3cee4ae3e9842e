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

    data_dir, timeout_s, uri = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    offline = sys.argv[4] == "offline"
    stack = parse_config({"image_name": "hf", "apis": ["datasetio"],
                          "storage": {"data_dir": data_dir}})
    config = HuggingfaceDatasetIOConfig(
        timeout_s=timeout_s, cache_dir=data_dir + "/cache", offline=offline
    )
    provider = HuggingfaceDatasetIO(config, {}, provider_context(stack, "huggingface"))
    started = time.monotonic()

    async def main():
        try:
            rows = await provider.load(uri)
            return {"status": 200, "rows": rows}
        except StackError as e:
            return {"status": e.status_code, "message": e.message}

    result = asyncio.new_event_loop().run_until_complete(main())
    result["elapsed_s"] = time.monotonic() - started
    print(json.dumps(result), flush=True)
    os._exit(0)  # a timed-out load's thread is still waiting on the hub: do not join it
    """
)


SIMPLEQA = "huggingface://datasets/llamastack/simpleqa?split=train"


def load_through(
    hub: FakeService | str,
    tmp_path: Path,
    timeout_s: float,
    uri: str = SIMPLEQA,
    offline: bool = False,
) -> dict[str, object]:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub if isinstance(hub, str) else hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_ETAG_TIMEOUT": "3",
        "HF_HUB_DOWNLOAD_TIMEOUT": "3",
        "PYTHONPATH": str(REPO),
    }
    # Other tests of this process may have switched the hub libraries offline.
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path),
            str(timeout_s),
            uri,
            "offline" if offline else "online",
        ],
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


PREPARE_CACHE = textwrap.dedent(
    """
    import sys
    from datasets.packaged_modules.csv.csv import Csv

    cache_dir, csv = sys.argv[1], sys.argv[2]
    builder = Csv(cache_dir=cache_dir, dataset_name="tiny-qa", data_files={"train": csv}, hash="0a1b")
    builder.download_and_prepare()
    print(builder.cache_dir)
    """
)


def test_a_dataset_in_the_librarys_cache_is_read_when_the_hub_cannot_be_reached(tmp_path):
    # The `datasets` library's own cache of `llamastack/tiny-qa`, written by its CSV builder
    # and laid out as a hub dataset's (<org>___<name>/<config>/<version>/<hash>).
    csv = tmp_path / "train.csv"
    csv.write_text("question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\n")
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    made = subprocess.run(
        [sys.executable, "-c", PREPARE_CACHE, str(cache), str(csv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    built = Path(made.stdout.strip().splitlines()[-1])  # cache/tiny-qa/default-<id>/0.0.0/0a1b
    hub_dir = cache / "llamastack___tiny-qa" / "default"
    hub_dir.parent.mkdir()
    built.parent.parent.rename(hub_dir)

    # Nothing listens on port 9: the hub is never asked (`offline`), the cache answers.
    uri = "huggingface://datasets/llamastack/tiny-qa?split=train"
    result = load_through("http://127.0.0.1:9", tmp_path, 30, uri, offline=True)
    assert result["status"] == 200, result
    assert result["rows"] == [
        {"question": "What is 2+2?", "answer": "4"},
        {"question": "Capital of France?", "answer": "Paris"},
    ]
    assert float(result["elapsed_s"]) < 20  # type: ignore[arg-type]
    # A dataset not in the cache: a 502 naming it, at once.
    missing = "huggingface://datasets/llamastack/other?split=train"
    result = load_through("http://127.0.0.1:9", tmp_path, 30, missing, offline=True)
    assert result["status"] == 502 and "'llamastack/other'" in str(result["message"])
    assert "OfflineModeIsEnabled" in str(result["message"])
