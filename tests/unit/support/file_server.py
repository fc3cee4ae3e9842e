"""A plain HTTP file server on 127.0.0.1 (the `FakeService` runner): `files` maps a path
to (bytes, content type); any other path is a 404, and `/slow/...` answers after
`delay_s` seconds (for timeouts)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import Response

from tests.unit.support.remote_servers import FakeService


class FileServer(FakeService):
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.delay_s = 0.0
        super().__init__(file_app)


def file_app(service: FakeService) -> FastAPI:
    assert isinstance(service, FileServer)
    app = FastAPI()

    @app.get("/{path:path}")
    async def get(path: str) -> Response:
        if path.startswith("slow/"):
            await asyncio.sleep(service.delay_s)
            path = path[len("slow/") :]
        if path not in service.files:
            return Response(status_code=404, content=b"not found")
        data, content_type = service.files[path]
        return Response(content=data, media_type=content_type)

    return app
