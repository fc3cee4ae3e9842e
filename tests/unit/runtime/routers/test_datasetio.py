"""The datasets and datasetio APIs through the gateway, with the real `llama-stack-client`
over HTTP, on an in-process stack: registration from every source kind, the purposes'
column checks, pagination, appended rows (persisted, seen by another router over the
same store), and the run config's datasets."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import llama_stack_client
import pandas
import pytest
from llama_stack_client import LlamaStackClient

from stackray.api.errors import ConfigError
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from tests.unit.support.file_server import FileServer
from tests.unit.support.remote_servers import FakeService

QA = [
    {"question": "What is 2+2?", "answer": "4"},
    {"question": "Capital of France?", "answer": "Paris"},
    {"question": "Color of the sky?", "answer": "blue"},
]


def stack_config(data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "version": 2,
        "image_name": "datasetio-test",
        "apis": ["datasetio"],
        "providers": {
            "datasetio": [
                {"provider_id": "localfs", "provider_type": "inline::localfs"},
                {
                    "provider_id": "huggingface",
                    "provider_type": "remote::huggingface",
                    "config": {"local_dir": str(data_dir / "hub"), "timeout_s": 20},
                },
            ]
        },
        "storage": {"data_dir": str(data_dir / "state")},
        **extra,
    }


class Clients:
    def __init__(self, config: dict[str, Any]) -> None:
        stack = parse_config(config)
        routers = asyncio.run(build_local_stack(stack))
        self.server = FakeService(lambda _: create_gateway_app(stack, routers)).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        self.llama = LlamaStackClient(base_url=self.server.url, max_retries=0, timeout=30)

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture()
def clients(tmp_path: Path) -> Iterator[Clients]:
    c = Clients(stack_config(tmp_path))
    yield c
    c.close()


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    server = FileServer()
    server.start()
    yield server
    server.stop()


def register(clients: Clients, uri: str, dataset_id: str, purpose: str = "eval/question-answer"):
    return clients.llama.datasets.register(
        purpose=purpose,  # type: ignore[arg-type]
        source={"type": "uri", "uri": uri},
        dataset_id=dataset_id,
    )


def all_rows(clients: Clients, dataset_id: str) -> list[dict[str, Any]]:
    return clients.llama.datasets.iterrows(dataset_id).data


def error_of(response: httpx.Response) -> dict[str, Any]:
    return response.json()["error"]  # type: ignore[no-any-return]


def data_uri(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def xlsx_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pandas.DataFrame(rows).to_excel(buffer, index=False)
    return buffer.getvalue()


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pandas.DataFrame(rows).to_parquet(buffer, index=False)
    return buffer.getvalue()


CSV = b"question,answer\nWhat is 2+2?,4\nCapital of France?,Paris\nColor of the sky?,blue\n"
JSONL = "\n".join(json.dumps(r) for r in QA).encode()


# ---- registration and the datasets API -------------------------------------------------


def test_rows_dataset_register_get_list_unregister(clients):
    ds = clients.llama.datasets.register(
        purpose="eval/question-answer",
        source={"type": "rows", "rows": QA},
        dataset_id="qa",
        metadata={"description": "three questions"},
    )
    assert (ds.identifier, ds.provider_id, ds.type) == ("qa", "localfs", "dataset")
    assert ds.source.type == "rows" and ds.metadata == {"description": "three questions"}
    assert clients.llama.datasets.retrieve("qa").purpose == "eval/question-answer"
    assert [d.identifier for d in clients.llama.datasets.list()] == ["qa"]
    assert all_rows(clients, "qa") == QA
    # The same registration again is fine; another one under the id is a conflict.
    clients.llama.datasets.register(
        purpose="eval/question-answer",
        source={"type": "rows", "rows": QA},
        dataset_id="qa",
        metadata={"description": "three questions"},
    )
    with pytest.raises(llama_stack_client.ConflictError):
        clients.llama.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": QA[:1]}, dataset_id="qa"
        )
    clients.llama.datasets.unregister("qa")
    assert clients.llama.datasets.list() == []
    with pytest.raises(llama_stack_client.NotFoundError, match="'qa' not found"):
        clients.llama.datasets.retrieve("qa")


def test_a_dataset_without_an_id_gets_one(clients):
    ds = clients.llama.datasets.register(
        purpose="post-training/messages",
        source={"type": "rows", "rows": [{"messages": [{"role": "user", "content": "hi"}]}]},
    )
    assert ds.identifier.startswith("dataset-")
    assert all_rows(clients, ds.identifier)[0]["messages"][0]["content"] == "hi"


@pytest.mark.parametrize(
    ("purpose", "row", "missing"),
    [
        ("eval/question-answer", {"question": "q"}, "answer"),
        ("eval/messages-answer", {"answer": "a"}, "messages"),
        ("post-training/messages", {"text": "t"}, "messages"),
    ],
)
def test_rows_without_the_purposes_columns_are_a_400_naming_the_column(
    clients, purpose, row, missing
):
    r = clients.http.post(
        "/v1/datasets",
        json={"purpose": purpose, "source": {"type": "rows", "rows": [QA[0], row]}},
    )
    if purpose != "eval/question-answer":
        # QA rows do not fit these purposes either: row 0 is the one named.
        assert r.status_code == 400 and error_of(r)["field"] == f"source.rows[0].{missing}"
        return
    assert r.status_code == 400
    assert error_of(r)["field"] == f"source.rows[1].{missing}"
    assert f"no column '{missing}'" in error_of(r)["message"]


def test_llama_stack_eval_columns_are_accepted_for_the_eval_purposes(clients):
    row = {
        "input_query": "q",
        "expected_answer": "a",
        "chat_completion_input": json.dumps([{"role": "user", "content": "q"}]),
    }
    for purpose in ("eval/question-answer", "eval/messages-answer"):
        ds = clients.llama.datasets.register(
            purpose=purpose, source={"type": "rows", "rows": [row]}
        )
        assert all_rows(clients, ds.identifier) == [row]


def test_unknown_purpose_and_source_type_are_400s(clients):
    r = clients.http.post(
        "/v1/datasets", json={"purpose": "eval/other", "source": {"type": "rows", "rows": []}}
    )
    assert r.status_code == 400 and error_of(r)["field"] == "purpose"
    r = clients.http.post(
        "/v1/datasets", json={"purpose": "eval/question-answer", "source": {"type": "s3"}}
    )
    assert r.status_code == 400 and error_of(r)["field"].startswith("source")


# ---- sources ---------------------------------------------------------------------------


def test_local_files_of_every_format_by_path_and_file_uri(clients, tmp_path):
    blobs = {
        "qa.csv": CSV,
        "qa.jsonl": JSONL,
        "qa.json": json.dumps(QA).encode(),
        "qa.parquet": parquet_bytes(QA),
        "qa.xlsx": xlsx_bytes(QA),
    }
    for name, data in blobs.items():
        (tmp_path / name).write_bytes(data)
        stem = name.replace(".", "-")
        register(clients, str(tmp_path / name), f"path-{stem}")
        register(clients, (tmp_path / name).as_uri(), f"uri-{stem}")
        assert all_rows(clients, f"path-{stem}") == QA, name
        assert all_rows(clients, f"uri-{stem}") == QA, name


def test_missing_cells_are_null_and_numbers_stay_numbers(clients, tmp_path):
    (tmp_path / "gaps.csv").write_text("question,answer,score\nq1,a1,1.5\nq2,,\n")
    register(clients, str(tmp_path / "gaps.csv"), "gaps")
    assert all_rows(clients, "gaps") == [
        {"question": "q1", "answer": "a1", "score": 1.5},
        {"question": "q2", "answer": None, "score": None},
    ]


def test_data_uris_of_every_format(clients):
    uris = {
        "csv": data_uri("text/csv", CSV),
        "csv-plain": "data:text/csv," + CSV.decode().replace("\n", "%0A").replace(" ", "%20"),
        "contract-style": data_uri("csv", CSV),
        "jsonl": data_uri("application/jsonl", JSONL),
        "json": data_uri("application/json", json.dumps(QA).encode()),
        "parquet": data_uri("application/vnd.apache.parquet", parquet_bytes(QA)),
        "xlsx": data_uri(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx_bytes(QA)
        ),
        # As Llama Stack 0.2.12: a type it does not know, not text, is read as Excel.
        "octets": data_uri("application/octet-stream", xlsx_bytes(QA)),
    }
    for name, uri in uris.items():
        register(clients, uri, f"data-{name}")
        assert all_rows(clients, f"data-{name}") == QA, name


def test_data_uris_that_do_not_decode_are_400s_naming_the_source(clients):
    for uri, why in (
        ("data:text/csv;base64,%%%not-base64", "base64"),
        ("data:no-comma-here", "expected data:"),
        (data_uri("application/json", b"{not json"), "does not decode as json"),
        (data_uri("application/vnd.apache.parquet", b"PAR1 nope"), "does not decode as parquet"),
    ):
        r = clients.http.post(
            "/v1/datasets",
            json={"purpose": "eval/question-answer", "source": {"type": "uri", "uri": uri}},
        )
        assert r.status_code == 400, uri
        assert error_of(r)["field"] == "source.uri" and why in error_of(r)["message"], uri


def test_bad_local_paths_are_400s(clients, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for uri, why in (
        (str(tmp_path / "missing.csv"), "no such file"),
        (str(tmp_path / "notes.txt"), "cannot tell the format"),
        ("relative/file.csv", "relative path"),
        ("ftp://host/file.csv", "unsupported URI scheme 'ftp'"),
    ):
        r = clients.http.post(
            "/v1/datasets",
            json={"purpose": "eval/question-answer", "source": {"type": "uri", "uri": uri}},
        )
        assert r.status_code == 400 and why in error_of(r)["message"], uri
        assert error_of(r)["field"] == "source.uri"


def test_http_files_by_extension_or_content_type(clients, files):
    files.files["qa.csv"] = (CSV, "text/plain")
    files.files["export"] = (JSONL, "application/x-ndjson")
    register(clients, f"{files.url}/qa.csv", "http-csv")
    register(clients, f"{files.url}/export", "http-jsonl")
    assert all_rows(clients, "http-csv") == QA
    assert all_rows(clients, "http-jsonl") == QA
    r = clients.http.post(
        "/v1/datasets",
        json={
            "purpose": "eval/question-answer",
            "source": {"type": "uri", "uri": f"{files.url}/gone.csv"},
        },
    )
    assert r.status_code == 502 and "HTTP 404" in error_of(r)["message"]


def test_a_slow_http_file_is_a_502_within_the_timeout(tmp_path, files):
    config = stack_config(tmp_path)
    config["providers"]["datasetio"][0]["config"] = {"http_timeout_s": 0.5}
    c = Clients(config)
    try:
        files.files["qa.csv"] = (CSV, "text/csv")
        files.delay_s = 5
        r = c.http.post(
            "/v1/datasets",
            json={
                "purpose": "eval/question-answer",
                "source": {"type": "uri", "uri": f"{files.url}/slow/qa.csv"},
            },
        )
        assert r.status_code == 502 and "longer than 0.5s" in error_of(r)["message"]
    finally:
        files.delay_s = 0
        c.close()


def test_uri_rows_are_checked_against_the_purpose(clients, tmp_path):
    (tmp_path / "bad.csv").write_text("question,reply\nq,r\n")
    r = clients.http.post(
        "/v1/datasets",
        json={
            "purpose": "eval/question-answer",
            "source": {"type": "uri", "uri": str(tmp_path / "bad.csv")},
        },
    )
    assert r.status_code == 400 and error_of(r)["field"] == "source.uri[0].answer"


def test_huggingface_datasets_from_a_local_directory(clients, tmp_path):
    hub = tmp_path / "hub" / "llamastack" / "tiny-qa"
    hub.mkdir(parents=True)
    (hub / "train.csv").write_bytes(CSV)
    (hub / "test.csv").write_text("question,answer\nOnly?,yes\n")
    ds = register(clients, "huggingface://datasets/llamastack/tiny-qa?split=train", "hf-train")
    assert ds.provider_id == "huggingface"
    register(clients, "huggingface://datasets/llamastack/tiny-qa?split=test", "hf-test")
    assert all_rows(clients, "hf-train") == QA
    assert all_rows(clients, "hf-test") == [{"question": "Only?", "answer": "yes"}]
    r = clients.http.post(
        "/v1/datasets",
        json={
            "purpose": "eval/question-answer",
            "source": {"type": "uri", "uri": "huggingface://datasets/llamastack/tiny-qa?sort=x"},
        },
    )
    assert r.status_code == 400 and "unknown parameter 'sort'" in error_of(r)["message"]


# ---- pagination and appending ----------------------------------------------------------


def test_iterrows_pages(clients):
    rows = [{"question": f"q{i}", "answer": str(i)} for i in range(7)]
    clients.llama.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": rows}, dataset_id="seven"
    )
    page = clients.llama.datasets.iterrows("seven", start_index=0, limit=3)
    assert page.data == rows[:3] and page.has_more is True
    page = clients.llama.datasets.iterrows("seven", start_index=6, limit=3)
    assert page.data == rows[6:] and page.has_more is False
    page = clients.llama.datasets.iterrows("seven", start_index=2, limit=-1)
    assert page.data == rows[2:] and page.has_more is False
    assert clients.llama.datasets.iterrows("seven", start_index=9, limit=2).data == []
    for params, field in (({"start_index": -1}, "start_index"), ({"limit": -2}, "limit")):
        r = clients.http.get("/v1/datasetio/iterrows/seven", params=params)
        assert r.status_code == 400 and error_of(r)["field"] == field
    r = clients.http.get("/v1/datasetio/iterrows/seven", params={"limit": "many"})
    assert r.status_code == 400 and error_of(r)["field"] == "query.limit"
    r = clients.http.get("/v1/datasetio/iterrows/nope")
    assert r.status_code == 404 and "'nope'" in error_of(r)["message"]


def test_appended_rows_persist_and_are_checked(tmp_path):
    config = stack_config(tmp_path)
    (tmp_path / "qa.jsonl").write_bytes(JSONL)
    c = Clients(config)
    try:
        register(c, str(tmp_path / "qa.jsonl"), "file-qa")
        c.llama.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": QA[:1]}, dataset_id="r"
        )
        new = [{"question": "New?", "answer": "yes"}]
        for dataset_id in ("file-qa", "r"):
            r = c.http.post(f"/v1/datasetio/append-rows/{dataset_id}", json={"rows": new})
            assert r.status_code == 200, r.text
        bad = c.http.post("/v1/datasetio/append-rows/r", json={"rows": [{"question": "x"}]})
        assert bad.status_code == 400 and error_of(bad)["field"] == "rows[0].answer"
        missing = c.http.post("/v1/datasetio/append-rows/none", json={"rows": new})
        assert missing.status_code == 404
    finally:
        c.close()
    # A new stack over the same store (a restart, or another replica) sees the rows.
    c = Clients(config)
    try:
        assert all_rows(c, "file-qa") == QA + new
        assert all_rows(c, "r") == QA[:1] + new
        # The file itself is left as it was.
        assert (tmp_path / "qa.jsonl").read_bytes() == JSONL
        # Unregistering drops the appended rows with the dataset.
        c.llama.datasets.unregister("r")
        c.llama.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": QA[:1]}, dataset_id="r"
        )
        assert all_rows(c, "r") == QA[:1]
    finally:
        c.close()


def test_appending_more_rows_than_configured_is_a_400(tmp_path):
    config = stack_config(tmp_path)
    config["providers"]["datasetio"][0]["config"] = {"max_rows_per_request": 2}
    c = Clients(config)
    try:
        c.llama.datasets.register(
            purpose="eval/question-answer", source={"type": "rows", "rows": []}, dataset_id="e"
        )
        r = c.http.post("/v1/datasetio/append-rows/e", json={"rows": QA})
        assert r.status_code == 400 and "at most 2" in error_of(r)["message"]
        assert error_of(r)["field"] == "rows"
    finally:
        c.close()


# ---- the run config --------------------------------------------------------------------


def test_config_datasets_are_registered_at_start(tmp_path):
    (tmp_path / "qa.csv").write_bytes(CSV)
    config = stack_config(
        tmp_path,
        datasets=[
            {
                "dataset_id": "from-config",
                "purpose": "eval/question-answer",
                "source": {"type": "uri", "uri": str(tmp_path / "qa.csv")},
                "metadata": {"origin": "run.yaml"},
            },
            {
                "dataset_id": "inline",
                "purpose": "eval/question-answer",
                "provider_id": "localfs",
                "source": {"type": "rows", "rows": QA[:2]},
            },
        ],
    )
    c = Clients(config)
    try:
        assert {d.identifier for d in c.llama.datasets.list()} == {"from-config", "inline"}
        assert all_rows(c, "from-config") == QA
        assert all_rows(c, "inline") == QA[:2]
    finally:
        c.close()


def test_config_datasets_are_validated_at_load(tmp_path):
    bad_purpose = stack_config(
        tmp_path,
        datasets=[{"dataset_id": "d", "purpose": "x", "source": {"type": "rows", "rows": []}}],
    )
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.purpose"):
        parse_config(bad_purpose)
    bad_source = stack_config(
        tmp_path,
        datasets=[{"dataset_id": "d", "purpose": "eval/question-answer", "source": {"type": "x"}}],
    )
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.source"):
        parse_config(bad_source)
    unserved = stack_config(
        tmp_path,
        datasets=[
            {
                "dataset_id": "d",
                "purpose": "eval/question-answer",
                "source": {"type": "rows", "rows": []},
            }
        ],
    )
    unserved["apis"] = ["files"]
    unserved["providers"] = {
        "files": [{"provider_id": "localfs", "provider_type": "inline::localfs"}]
    }
    with pytest.raises(ConfigError, match="needs the datasetio API"):
        parse_config(unserved)


def test_allowed_dirs_and_the_size_limit_are_honoured(tmp_path):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (allowed / "qa.csv").write_bytes(CSV)
    (other / "qa.csv").write_bytes(CSV)
    (allowed / "big.csv").write_bytes(CSV * 20)
    config = stack_config(tmp_path)
    config["providers"]["datasetio"][0]["config"] = {
        "allowed_dirs": [str(allowed)],
        "max_download_bytes": len(CSV) * 10,
    }
    c = Clients(config)
    try:
        register(c, str(allowed / "qa.csv"), "inside")
        assert all_rows(c, "inside") == QA
        for uri, why in (
            (str(other / "qa.csv"), "outside the directories"),
            (str(allowed / ".." / "other" / "qa.csv"), "outside the directories"),
            (str(allowed / "big.csv"), "reads at most"),
            (data_uri("text/csv", CSV * 20), "reads at most"),
        ):
            r = c.http.post(
                "/v1/datasets",
                json={"purpose": "eval/question-answer", "source": {"type": "uri", "uri": uri}},
            )
            assert r.status_code == 400 and why in error_of(r)["message"], uri
    finally:
        c.close()
