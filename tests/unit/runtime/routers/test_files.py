"""The Files API without Ray: the router over both providers (a local directory, and S3
through boto3 against moto's S3 server on loopback), and the gateway's routes driven by
the real `openai` SDK over a Starlette TestClient."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from stackray.api.errors import (
    BadRequestError,
    ConfigError,
    NotFoundError,
    PayloadTooLargeError,
    ProviderError,
)
from stackray.deployments.gateway import create_gateway_app
from stackray.providers.utils.files import DEFAULT_MAX_FILE_SIZE_BYTES
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.routers.files import FilesRouter, build_router

# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


def files_stack(data_dir: Path, provider: dict[str, Any] | None = None):
    provider = provider or {"provider_id": "localfs", "provider_type": "inline::localfs"}
    return parse_config(
        {
            "version": 2,
            "image_name": "files",
            "apis": ["files"],
            "providers": {"files": [provider]},
            "storage": {"data_dir": str(data_dir)},
        }
    )


def make_router(data_dir: Path, provider: dict[str, Any] | None = None) -> FilesRouter:
    return asyncio.run(build_router(files_stack(data_dir, provider), {}))


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_provider(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider_id": "s3",
        "provider_type": "remote::s3",
        "config": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "region": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "auto_create_bucket": True,
            **extra,
        },
    }


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# ---------------------------------------------------------------------------------------
# The router, over both providers
# ---------------------------------------------------------------------------------------


@pytest.fixture(params=["localfs", "s3"])
def router(request, tmp_path) -> FilesRouter:
    if request.param == "localfs":
        return make_router(tmp_path)
    endpoint = request.getfixturevalue("s3_endpoint")
    return make_router(tmp_path, s3_provider(endpoint, f"bucket-{uuid.uuid4().hex[:12]}"))


def run(coro):
    return asyncio.run(coro)


def test_upload_get_content_delete(router: FilesRouter) -> None:
    created = run(router.upload_file(b"hello files", "notes/hello.txt", "assistants"))
    assert created.id.startswith("file-")
    assert created.object == "file" and created.bytes == 11 and created.filename == "hello.txt"
    assert created.purpose.value == "assistants"
    assert created.expires_at - created.created_at == 365 * 24 * 3600

    assert run(router.get_file(created.id)) == created
    assert run(router.get_file_content(created.id)) == b"hello files"
    download = run(router.download_file(created.id))
    assert download.content_type == "text/plain" and download.file == created

    deleted = run(router.delete_file(created.id))
    assert deleted.model_dump() == {"id": created.id, "object": "file", "deleted": True}
    for call in (router.get_file, router.get_file_content, router.delete_file):
        with pytest.raises(NotFoundError) as err:
            run(call(created.id))
        assert err.value.field == "file_id" and created.id in err.value.message
    assert run(router.list_files()).data == []


def test_binary_content_round_trips(router: FilesRouter) -> None:
    payload = bytes(range(256)) * 1000
    created = run(router.upload_file(payload, "blob.bin", "assistants", "application/x-custom"))
    assert run(router.get_file_content(created.id)) == payload
    assert run(router.download_file(created.id)).content_type == "application/x-custom"


def test_content_deleted_from_the_provider(router: FilesRouter) -> None:
    created = run(router.upload_file(b"x", "x.txt", "assistants"))
    provider = router.providers[router.upload_provider_id]
    assert run(provider.get_content(created.id)) == b"x"
    run(router.delete_file(created.id))
    with pytest.raises(NotFoundError):
        run(provider.get_content(created.id))


def test_listing_order_pagination_and_purpose(tmp_path) -> None:
    now = [1_000_000.0]
    router = make_router(tmp_path)
    router._clock = lambda: now[0]
    ids = []
    for i in range(5):
        ids.append(run(router.upload_file(f"{i}".encode(), f"{i}.txt", "assistants")).id)
        now[0] += 1

    newest_first = run(router.list_files())
    assert [f.id for f in newest_first.data] == ids[::-1]
    assert newest_first.has_more is False
    assert (newest_first.first_id, newest_first.last_id) == (ids[4], ids[0])

    page1 = run(router.list_files(limit=2, order="asc"))
    assert [f.id for f in page1.data] == ids[:2] and page1.has_more
    page2 = run(router.list_files(after=page1.last_id, limit=2, order="asc"))
    assert [f.id for f in page2.data] == ids[2:4] and page2.has_more
    page3 = run(router.list_files(after=page2.last_id, limit=2, order="asc"))
    assert [f.id for f in page3.data] == ids[4:] and not page3.has_more

    assert len(run(router.list_files(purpose="assistants")).data) == 5
    empty = run(router.list_files(after=ids[0], order="desc"))
    assert empty.data == [] and empty.first_id == "" and empty.last_id == ""


def test_uploads_within_one_second_list_in_upload_order(router: FilesRouter) -> None:
    router._clock = lambda: 1_000_000.0
    ids = [run(router.upload_file(b"x", f"{i}.txt", "assistants")).id for i in range(6)]
    assert [f.id for f in run(router.list_files(order="asc")).data] == ids
    assert [f.id for f in run(router.list_files()).data] == ids[::-1]
    page = run(router.list_files(order="asc", after=ids[2], limit=2))
    assert [f.id for f in page.data] == ids[3:5] and page.has_more


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"purpose": "fine-tune"}, "purpose"),
        ({"after": "file-unknown"}, "after"),
    ],
)
def test_listing_rejects_bad_parameters(tmp_path, kwargs, field) -> None:
    router = make_router(tmp_path)
    with pytest.raises(BadRequestError) as err:
        run(router.list_files(**kwargs))
    assert err.value.field == field


def test_upload_validates_purpose_and_size(tmp_path) -> None:
    router = make_router(
        tmp_path,
        {
            "provider_id": "localfs",
            "provider_type": "inline::localfs",
            "config": {"max_file_size_bytes": 10},
        },
    )
    with pytest.raises(BadRequestError) as err:
        run(router.upload_file(b"x", "x.txt", "batch"))
    assert err.value.field == "purpose" and "'batch'" in err.value.message
    assert "assistants" in err.value.message
    with pytest.raises(BadRequestError, match="purpose"):
        run(router.upload_file(b"x", "x.txt", None))  # type: ignore[arg-type]

    assert run(router.upload_file(b"0123456789", "ten.txt", "assistants")).bytes == 10
    with pytest.raises(PayloadTooLargeError) as too_big:
        run(router.upload_file(b"0123456789!", "eleven.txt", "assistants"))
    assert too_big.value.status_code == 413 and "eleven.txt" in too_big.value.message
    assert run(router.upload_file(b"", "", "assistants")).filename == "upload"
    assert router.upload_limit() == 10
    assert make_router(tmp_path / "other").upload_limit() == DEFAULT_MAX_FILE_SIZE_BYTES


def test_expired_files_are_gone(tmp_path) -> None:
    now = [1_000_000.0]
    router = make_router(
        tmp_path,
        {
            "provider_id": "localfs",
            "provider_type": "inline::localfs",
            "config": {"ttl_seconds": 60},
        },
    )
    router._clock = lambda: now[0]
    old = run(router.upload_file(b"old", "old.txt", "assistants"))
    now[0] += 30
    young = run(router.upload_file(b"young", "young.txt", "assistants"))
    assert old.expires_at == old.created_at + 60
    now[0] += 31
    assert [f.id for f in run(router.list_files()).data] == [young.id]
    with pytest.raises(NotFoundError):
        run(router.get_file(old.id))
    assert not (tmp_path / "providers" / "localfs" / "files" / old.id).exists()
    assert run(router.get_file_content(young.id)) == b"young"


def test_files_survive_a_restart_and_are_shared_by_replicas(tmp_path) -> None:
    first = make_router(tmp_path)
    second = make_router(tmp_path)  # another replica of the files deployment
    created = run(first.upload_file(b"kept", "kept.md", "assistants"))
    assert run(second.get_file_content(created.id)) == b"kept"
    assert run(second.download_file(created.id)).content_type == "text/markdown"
    first.store.close()
    second.store.close()

    restarted = make_router(tmp_path)
    assert [f.id for f in run(restarted.list_files()).data] == [created.id]
    assert run(restarted.get_file_content(created.id)) == b"kept"
    run(restarted.delete_file(created.id))
    assert run(make_router(tmp_path).list_files()).data == []


def test_localfs_storage_dir_and_ids(tmp_path) -> None:
    storage = tmp_path / "elsewhere"
    router = make_router(
        tmp_path / "data",
        {
            "provider_id": "localfs",
            "provider_type": "inline::localfs",
            "config": {"storage_dir": str(storage)},
        },
    )
    created = run(router.upload_file(b"abc", "a.txt", "assistants"))
    assert (storage / created.id).read_bytes() == b"abc"
    assert [p.name for p in storage.iterdir()] == [created.id]  # no temporary files left
    provider = router.providers["localfs"]
    with pytest.raises(ProviderError, match="not a file id"):  # keys are ids, never paths
        run(provider.get_content("../../etc/passwd"))
    with pytest.raises(NotFoundError):
        run(router.get_file("../../etc/passwd"))


def test_localfs_metadata_store_of_0_2_12_holds_the_files_table(tmp_path) -> None:
    import sqlite3

    metadata = tmp_path / "stores" / "files_metadata.db"
    provider = {
        "provider_id": "meta-reference-files",
        "provider_type": "inline::localfs",
        "config": {
            "storage_dir": str(tmp_path / "files"),
            "metadata_store": {"type": "sqlite", "db_path": str(metadata)},
        },
    }
    router = make_router(tmp_path / "data", provider)
    created = run(router.upload_file(b"abc", "a.txt", "assistants"))
    with sqlite3.connect(metadata) as conn:
        assert conn.execute("SELECT id FROM files").fetchall() == [(created.id,)]
    assert not (tmp_path / "data" / "registry.db").exists()
    # Another router on the same config (a restart, another replica) sees the file.
    assert run(make_router(tmp_path / "data", provider).get_file(created.id)) == created


def test_files_providers_naming_two_metadata_stores_are_refused(tmp_path) -> None:
    def localfs(pid: str, db: str) -> dict[str, Any]:
        return {
            "provider_id": pid,
            "provider_type": "inline::localfs",
            "config": {"metadata_store": {"type": "sqlite", "db_path": str(tmp_path / db)}},
        }

    stack = parse_config(
        {
            "version": 2,
            "image_name": "files",
            "apis": ["files"],
            "providers": {"files": [localfs("a", "a.db"), localfs("b", "b.db")]},
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    with pytest.raises(ConfigError, match="providers.files: the providers name different"):
        asyncio.run(build_router(stack, {}))


def test_a_stack_without_files_provider_is_refused(tmp_path) -> None:
    stack = parse_config(
        {"version": 2, "image_name": "x", "apis": ["files"], "storage": {"data_dir": str(tmp_path)}}
    )
    with pytest.raises(ConfigError, match="providers.files"):
        run(build_router(stack, {}))


def test_other_apis_reach_files_through_an_api_client(tmp_path) -> None:
    from stackray.runtime.calls import ApiClient, LocalTransport

    router = make_router(tmp_path)
    files = ApiClient(LocalTransport(router), "files")  # as deps[Api.files] in a deployment

    async def use() -> None:
        created = await files.upload_file(b"for a vector store", "v.txt", "assistants")
        assert await files.get_file_content(created.id) == b"for a vector store"
        listing = await files.list_files(None, 10, "asc", "assistants")
        assert [f.id for f in listing.data] == [created.id]
        assert (await files.delete_file(created.id)).deleted

    run(use())


# ---------------------------------------------------------------------------------------
# remote::s3 specifics
# ---------------------------------------------------------------------------------------


def test_s3_objects_live_in_the_bucket(tmp_path, s3_endpoint) -> None:
    router = make_router(
        tmp_path, s3_provider(s3_endpoint, "stackray-objects", key_prefix="stack/files/")
    )
    created = run(router.upload_file(b"in the bucket", "b.txt", "assistants"))
    client = s3_client(s3_endpoint)
    body = client.get_object(Bucket="stackray-objects", Key=f"stack/files/{created.id}")["Body"]
    assert body.read() == b"in the bucket"
    run(router.delete_file(created.id))
    listed = client.list_objects_v2(Bucket="stackray-objects", Prefix="stack/files/")
    assert listed.get("KeyCount", 0) == 0


def test_s3_missing_bucket_without_auto_create(tmp_path, s3_endpoint) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        make_router(tmp_path, s3_provider(s3_endpoint, "never-made", auto_create_bucket=False))
    s3_client(s3_endpoint).create_bucket(Bucket="made-by-hand")
    router = make_router(
        tmp_path, s3_provider(s3_endpoint, "made-by-hand", auto_create_bucket=False)
    )
    created = run(router.upload_file(b"ok", "ok.txt", "assistants"))
    assert run(router.get_file_content(created.id)) == b"ok"


def test_s3_object_removed_behind_the_stack(tmp_path, s3_endpoint) -> None:
    router = make_router(tmp_path, s3_provider(s3_endpoint, "stackray-gone"))
    created = run(router.upload_file(b"soon gone", "g.txt", "assistants"))
    s3_client(s3_endpoint).delete_object(Bucket="stackray-gone", Key=created.id)
    with pytest.raises(NotFoundError, match="missing from S3 bucket"):
        run(router.get_file_content(created.id))


def test_s3_unreachable_is_a_provider_error(tmp_path, s3_endpoint) -> None:
    router = make_router(tmp_path, s3_provider(s3_endpoint, "stackray-unreachable"))
    import boto3
    from botocore.config import Config

    router.providers["s3"]._impl._client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    with pytest.raises(Exception) as err:
        run(router.upload_file(b"x", "x.txt", "assistants"))
    assert getattr(err.value, "status_code", None) == 502
    assert "provider 's3'" in str(err.value)
    assert run(router.list_files()).data == []  # nothing half-written


# ---------------------------------------------------------------------------------------
# The gateway, with the openai SDK
# ---------------------------------------------------------------------------------------


@pytest.fixture()
def http(tmp_path) -> Iterator[TestClient]:
    stack = files_stack(
        tmp_path,
        {
            "provider_id": "localfs",
            "provider_type": "inline::localfs",
            "config": {"max_file_size_bytes": 100_000},
        },
    )
    routers = asyncio.run(build_local_stack(stack))
    with TestClient(create_gateway_app(stack, routers)) as client:
        yield client


@pytest.mark.parametrize("prefix", ["/v1/openai/v1", "/v1"])
def test_openai_sdk_round_trip(http: TestClient, prefix: str) -> None:
    client = openai.OpenAI(
        base_url=f"http://testserver{prefix}", api_key="unused", http_client=http, max_retries=0
    )
    created = client.files.create(file=("report.csv", b"a,b\n1,2\n"), purpose="assistants")
    assert created.filename == "report.csv" and created.bytes == 8
    assert created.purpose == "assistants" and created.object == "file"

    listed = client.files.list(purpose="assistants")
    assert [f.id for f in listed.data] == [created.id]
    assert client.files.retrieve(created.id).model_dump() == created.model_dump()

    content = client.files.content(created.id)
    assert content.content == b"a,b\n1,2\n"
    assert content.response.headers["content-type"].startswith("text/csv")

    deleted = client.files.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(created.id)
    assert created.id in str(err.value)
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("x.txt", b"x"), purpose="fine-tune")
    assert bad.value.body["param"] == "purpose"  # type: ignore[index]


def test_openai_sdk_pagination(http: TestClient) -> None:
    client = openai.OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0
    )
    ids = {client.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id for i in range(5)}
    page = client.files.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    assert {f.id for f in page} == ids  # iterating follows the `after` cursors


def test_upload_errors_over_http(http: TestClient) -> None:
    r = http.post("/v1/files", data={"purpose": "assistants"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "file"
    r = http.post("/v1/files", files={"file": ("a.txt", b"a")})
    assert r.status_code == 400 and r.json()["error"]["field"] == "purpose"
    r = http.post("/v1/files", files={"file": ("a.txt", b"a")}, data={"purpose": "batch"})
    assert r.status_code == 400 and "'batch'" in r.json()["detail"]
    r = http.post("/v1/files", json={"file": "a", "purpose": "assistants"})
    assert r.status_code == 400 and "multipart/form-data" in r.json()["detail"]

    r = http.post(
        "/v1/files", files={"file": ("big.bin", b"x" * 100_001)}, data={"purpose": "assistants"}
    )
    assert r.status_code == 413, r.text
    assert "100000 bytes" in r.json()["detail"]
    r = http.post(
        "/v1/files", files={"file": ("huge.bin", b"x" * 300_000)}, data={"purpose": "assistants"}
    )
    assert r.status_code == 413
    # Refused from its Content-Length (the whole body), before the parser read the file.
    announced = int(re.search(r"the upload is (\d+) bytes", r.json()["detail"]).group(1))
    assert announced == int(r.request.headers["content-length"]) > 300_000
    assert http.get("/v1/files").json()["data"] == []

    r = http.get("/v1/files", params={"limit": "many"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "query.limit"
    r = http.get("/v1/files", params={"order": "up"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "order"
    assert http.get("/v1/openai/v1/files/file-missing/content").status_code == 404


def test_listing_shape_over_http(http: TestClient) -> None:
    empty = http.get("/v1/openai/v1/files").json()
    assert empty == {"data": [], "has_more": False, "first_id": "", "last_id": "", "object": "list"}
    created = http.post(
        "/v1/files", files={"file": ("a.txt", b"a")}, data={"purpose": "assistants"}
    ).json()
    assert set(created) == {
        "object",
        "id",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
    }


def test_files_routes_answer_404_when_the_api_is_not_served(tmp_path) -> None:
    stack = parse_config(
        {"version": 2, "image_name": "nofiles", "apis": [], "storage": {"data_dir": str(tmp_path)}}
    )
    with TestClient(create_gateway_app(stack, {})) as client:
        r = client.get("/v1/files")
        assert r.status_code == 404 and "files API is not served" in r.json()["detail"]
