"""The Files API on the shared Serve stack: the real `openai` SDK under /v1/openai/v1, and
plain HTTP under /v1; bodies cross the gateway -> files deployment handle."""

from __future__ import annotations

import openai
import pytest

PDF_LIKE = b"%PDF-1.4\n" + bytes(range(256)) * 64  # binary content survives the hops


def test_openai_sdk_files(stack) -> None:
    client = stack.openai()
    created = client.files.create(file=("notes.txt", b"stackray files\n"), purpose="assistants")
    assert created.id.startswith("file-") and created.bytes == 15
    assert created.filename == "notes.txt" and created.purpose == "assistants"

    binary = client.files.create(file=("doc.pdf", PDF_LIKE), purpose="assistants")
    ids = [f.id for f in client.files.list(purpose="assistants", order="asc").data]
    assert ids.index(created.id) < ids.index(binary.id)

    assert client.files.retrieve(created.id).model_dump() == created.model_dump()
    assert client.files.content(created.id).content == b"stackray files\n"
    pdf = client.files.content(binary.id)
    assert pdf.content == PDF_LIKE
    assert pdf.response.headers["content-type"] == "application/pdf"
    # The bytes are in the localfs provider's directory under the stack's data dir.
    stored = stack.data_dir / "providers" / "localfs" / "files" / binary.id
    assert stored.read_bytes() == PDF_LIKE

    for file_id in (created.id, binary.id):
        assert client.files.delete(file_id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert not stored.exists()


def test_files_under_v1_over_http(stack) -> None:
    with stack.http() as http:
        r = http.post(
            "/v1/files",
            files={"file": ("data.json", b'{"a": 1}', "application/json")},
            data={"purpose": "assistants"},
        )
        assert r.status_code == 200, r.text
        file_id = r.json()["id"]
        assert http.get(f"/v1/files/{file_id}").json()["filename"] == "data.json"
        content = http.get(f"/v1/files/{file_id}/content")
        assert content.content == b'{"a": 1}'
        assert content.headers["content-type"] == "application/json"
        listed = http.get("/v1/files", params={"limit": 1}).json()
        assert listed["data"][0]["id"] == file_id and listed["first_id"] == file_id

        bad = http.post("/v1/files", files={"file": ("x", b"x")}, data={"purpose": "vision"})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "purpose"

        assert http.delete(f"/v1/files/{file_id}").json() == {
            "id": file_id,
            "object": "file",
            "deleted": True,
        }
        missing = http.get(f"/v1/files/{file_id}/content")
        assert missing.status_code == 404 and file_id in missing.json()["detail"]
