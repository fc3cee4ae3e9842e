"""A real MCP server for the tool runtime tests, built with the `mcp` package and served
by uvicorn on 127.0.0.1 in a thread: the same tools over SSE (``/sse``) and over
streamable HTTP (``/mcp``), each transport on its own port (and SSE at ``/events`` on a
third, for the transport fallback).

Tools: ``add`` (two integers), ``echo``, ``whoami`` (checks the Authorization header the
call carries), ``picture`` (an image), ``document`` (an embedded text resource) and
``fail`` (a tool error). Setting `required_token` makes the whole server answer 401
unless a request carries ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import EmbeddedResource, TextResourceContents

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
TOKEN = "s3cret-token"


def build_mcp_server(state: MCPTestServer) -> MCPServer:
    server = MCPServer("stackray-test-tools")

    @server.tool(description="Add two integers")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Say the text back")
    def echo(text: str, times: int = 1) -> str:
        return " ".join([text] * times)

    @server.tool(description="Tell whether the call carries the expected Authorization header")
    def whoami(ctx: Context) -> str:
        headers = ctx.headers or {}
        state.seen_authorization.append(headers.get("authorization"))
        if headers.get("authorization") != f"Bearer {TOKEN}":
            raise ToolError("unauthorized: no valid Authorization header")
        return "authorized"

    @server.tool(description="A small picture")
    def picture() -> Image:
        return Image(data=PNG, format="png")

    @server.tool(description="A document, as an embedded resource")
    def document(name: str) -> list[EmbeddedResource]:
        return [
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri=f"file:///docs/{name}.txt",
                    mime_type="text/plain",
                    text=f"contents of {name}",
                ),
            )
        ]

    @server.tool(description="Always fails")
    def fail(message: str) -> str:
        raise ToolError(message)

    return server


class MCPTestServer:
    def __init__(self) -> None:
        self.required_token: str | None = None
        self.seen_authorization: list[str | None] = []
        self.requests: list[tuple[str, str, bool]] = []
        """(method, path, carries an mcp-session-id) of every HTTP request."""
        self._servers: list[uvicorn.Server] = []
        self._threads: list[threading.Thread] = []
        self.sse_port = 0
        self.http_port = 0
        self.events_port = 0

    @property
    def sse_url(self) -> str:
        return f"http://127.0.0.1:{self.sse_port}/sse"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/mcp"

    @property
    def events_url(self) -> str:
        """SSE at a path that does not end in /sse (streamable HTTP is tried first)."""
        return f"http://127.0.0.1:{self.events_port}/events"

    def _guard(self, app: Any) -> Any:
        outer = self

        async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                outer.requests.append(
                    (scope["method"], scope["path"], b"mcp-session-id" in headers)
                )
            if scope["type"] == "http" and outer.required_token is not None:
                if headers.get(b"authorization") != f"Bearer {outer.required_token}".encode():
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 401,
                            "headers": [(b"content-type", b"application/json")],
                        }
                    )
                    await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
                    return
            await app(scope, receive, send)

        return guarded

    def start(self) -> MCPTestServer:
        server = build_mcp_server(self)
        apps = [
            server.sse_app(),
            server.streamable_http_app(),
            server.sse_app(sse_path="/events"),
        ]
        ports = []
        for app in apps:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
            config = uvicorn.Config(
                self._guard(app), log_level="warning", lifespan="on", timeout_graceful_shutdown=1
            )
            uv = uvicorn.Server(config)
            thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            self._servers.append(uv)
            self._threads.append(thread)
        self.sse_port, self.http_port, self.events_port = ports
        deadline = time.monotonic() + 15
        while not all(s.started for s in self._servers):
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.should_exit = True
        for t in self._threads:
            t.join(timeout=10)

    def sessions_opened(self) -> int:
        """MCP sessions opened so far: SSE streams, and streamable-HTTP POSTs without a
        session id (an ``initialize``)."""
        return sum(
            1
            for method, path, has_id in self.requests
            if (method == "GET" and path in ("/sse", "/events"))
            or (method == "POST" and path == "/mcp" and not has_id)
        )

    def reset(self) -> MCPTestServer:
        self.required_token = None
        self.seen_authorization.clear()
        self.requests.clear()
        return self
