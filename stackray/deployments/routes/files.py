"""Routes of the files API (OpenAI's Files API, under /v1/openai/v1 and /v1)."""

from __future__ import annotations

from fastapi import Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from stackray.api.datatypes import Api
from stackray.api.errors import BadRequestError, PayloadTooLargeError
from stackray.deployments.routes import Routes

FILES = Api.files.value

# What a multipart body may carry besides the file itself (boundaries, headers, purpose).
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def register(routes: Routes) -> None:
    call, json = routes.call, routes.json
    limit: list[int] = []  # the files deployment's upload limit, asked once (it is config)

    async def upload_limit() -> int:
        if not limit:
            limit.append(int(await call(FILES, "upload_limit")))
        return limit[0]

    def too_large(size: int, most: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"the upload is {size} bytes; the largest file accepted is {most} bytes",
            field="file",
        )

    async def upload_file(request: Request) -> Response:
        # The body is parsed here rather than by FastAPI, so that a body announcing itself
        # too large is refused before it is read.
        most = await upload_limit()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > most + MULTIPART_OVERHEAD_BYTES:
            raise too_large(int(declared), most)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequestError(
                "upload a file as multipart/form-data with the fields `file` and `purpose`",
                field="file",
            )
        try:
            form = await request.form(max_files=1, max_fields=16)
        except (MultiPartException, HTTPException) as exc:
            raise BadRequestError(f"invalid multipart body: {exc}", field="file") from None
        try:
            file, purpose = form.get("file"), form.get("purpose")
            if not isinstance(file, StarletteUploadFile):
                raise BadRequestError("the `file` field (a file) is required", field="file")
            if not isinstance(purpose, str) or not purpose:
                raise BadRequestError("the `purpose` field is required", field="purpose")
            # The parser spooled the file to a temporary file: read at most the limit.
            if file.size is not None and file.size > most:
                raise too_large(file.size, most)
            content = await file.read(most + 1)
            if len(content) > most:
                raise too_large(len(content), most)
            created = await call(
                FILES, "upload_file", content, file.filename or "", purpose, file.content_type
            )
        finally:
            await form.close()
        return json(created)

    async def list_files(
        after: str | None = Query(default=None),
        limit: int | None = Query(default=None),
        order: str | None = Query(default=None),
        purpose: str | None = Query(default=None),
    ) -> Response:
        return json(await call(FILES, "list_files", after, limit, order, purpose))

    async def get_file(file_id: str) -> Response:
        return json(await call(FILES, "get_file", file_id))

    async def delete_file(file_id: str) -> Response:
        return json(await call(FILES, "delete_file", file_id))

    async def file_content(file_id: str) -> Response:
        download = await call(FILES, "download_file", file_id)
        return Response(content=download.content, media_type=download.content_type)

    routes.add(Api.files, "POST", "/files", upload_file, openai=True)
    routes.add(Api.files, "GET", "/files", list_files, openai=True)
    routes.add(Api.files, "GET", "/files/{file_id}", get_file, openai=True)
    routes.add(Api.files, "DELETE", "/files/{file_id}", delete_file, openai=True)
    routes.add(Api.files, "GET", "/files/{file_id}/content", file_content, openai=True)
