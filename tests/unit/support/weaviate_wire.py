"""A loopback endpoint speaking Weaviate's wire protocols, for testing `remote::weaviate`
with the real weaviate-client (no Weaviate server can run here).

REST (``/v1/meta``, ``/v1/.well-known/*``, ``/v1/schema``) and gRPC (``weaviate.v1.Weaviate``
Search / BatchObjects / BatchDelete / Aggregate and the health check) on 127.0.0.1,
answering in the shapes a Weaviate 1.32 server sends. It is not a database: it records
every request the client makes, keeps the set of collection names (so ``exists`` follows
``create``/``delete``), and answers searches with the replies a test queues
(`queue_search`), built from real protobuf messages by `search_reply`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from weaviate.proto.v1 import (
    aggregate_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

from stackray.api.vector_io import Chunk
from stackray.providers.utils.vector_db import chunk_id_of, chunk_uuid, dump_chunk

SERVER_VERSION = "1.32.4"


@dataclass
class GrpcError:
    """A queued search answer that fails, as Weaviate fails a query (status + details)."""

    code: grpc.StatusCode
    details: str


@dataclass
class WeaviateWire:
    rest_requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    grpc_requests: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    collections: set[str] = field(default_factory=set)
    object_count: int = 0
    batch_errors: dict[int, str] = field(default_factory=dict)
    _search_replies: deque[Any] = field(default_factory=deque)

    def queue_search(self, reply: search_get_pb2.SearchReply | GrpcError) -> None:
        self._search_replies.append(reply)

    def grpc_calls(self, method: str) -> list[Any]:
        return [req for name, req, _ in self.grpc_requests if name == method]

    def clear(self) -> None:
        self.rest_requests.clear()
        self.grpc_requests.clear()

    # -- servers ---------------------------------------------------------------------

    def start(self) -> WeaviateWire:
        wire = self

        class Rest(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                wire.rest_requests.append(
                    (self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                return body

            def do_GET(self) -> None:
                self._record()
                if self.path == "/v1/meta":
                    self._answer(
                        200,
                        {
                            "hostname": "http://[::]:8080",
                            "modules": {},
                            "version": SERVER_VERSION,
                            "grpcMaxMessageSize": 104858000,
                        },
                    )
                elif self.path == "/v1/.well-known/ready":
                    self._answer(200)
                elif self.path == "/pypi/weaviate-client/json":
                    self._answer(200, {"info": {"version": "4.24.1"}})
                elif self.path.startswith("/v1/schema/"):
                    name = self.path.removeprefix("/v1/schema/")
                    if name in wire.collections:
                        self._answer(200, {"class": name})
                    else:
                        self._answer(404)
                else:  # e.g. /v1/.well-known/openid-configuration: no OIDC configured
                    self._answer(404, {"error": [{"message": "not found"}]})

            def do_POST(self) -> None:
                body = self._record()
                if self.path == "/v1/schema":
                    wire.collections.add(body["class"])
                    self._answer(200, body)
                else:
                    self._answer(404)

            def do_DELETE(self) -> None:
                self._record()
                if self.path.startswith("/v1/schema/"):
                    wire.collections.discard(self.path.removeprefix("/v1/schema/"))
                    self._answer(200)
                else:
                    self._answer(404)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

        class Service(weaviate_pb2_grpc.WeaviateServicer):
            def _record(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
                wire.grpc_requests.append((name, request, dict(context.invocation_metadata())))

            def Search(self, request: Any, context: grpc.ServicerContext) -> Any:
                self._record("Search", request, context)
                reply = wire._search_replies.popleft() if wire._search_replies else None
                if isinstance(reply, GrpcError):
                    context.abort(reply.code, reply.details)
                return reply or search_get_pb2.SearchReply(took=0.001)

            def BatchObjects(self, request: Any, context: grpc.ServicerContext) -> Any:
                self._record("BatchObjects", request, context)
                errors = [
                    batch_pb2.BatchObjectsReply.BatchError(index=i, error=msg)
                    for i, msg in wire.batch_errors.items()
                ]
                return batch_pb2.BatchObjectsReply(took=0.002, errors=errors)

            def BatchDelete(self, request: Any, context: grpc.ServicerContext) -> Any:
                self._record("BatchDelete", request, context)
                return batch_delete_pb2.BatchDeleteReply(
                    took=0.001, failed=0, matches=1, successful=1
                )

            def Aggregate(self, request: Any, context: grpc.ServicerContext) -> Any:
                self._record("Aggregate", request, context)
                return aggregate_pb2.AggregateReply(
                    took=0.001,
                    single_result=aggregate_pb2.AggregateReply.Single(
                        objects_count=wire.object_count
                    ),
                )

        def health(request: Any, context: grpc.ServicerContext) -> Any:
            return health_weaviate_pb2.WeaviateHealthCheckResponse(
                status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
            )

        health_handler = grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health",
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    health,
                    request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                    response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
                )
            },
        )
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(Service(), self._grpc)
        self._grpc.add_generic_rpc_handlers((health_handler,))
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


def search_reply(
    collection: str,
    hits: list[tuple[Chunk, float]],
    kind: str,
) -> search_get_pb2.SearchReply:
    """A Search reply as Weaviate sends it: per hit the requested `chunk` property and the
    object's id, with its ``distance`` (near_vector) or ``score`` (bm25)."""
    results = []
    for chunk, value in hits:
        meta = search_get_pb2.MetadataResult(
            id_as_bytes=uuid.UUID(chunk_uuid(chunk_id_of(chunk))).bytes
        )
        if kind == "distance":
            meta.distance = value
            meta.distance_present = True
        else:
            meta.score = value
            meta.score_present = True
        results.append(
            search_get_pb2.SearchResult(
                properties=search_get_pb2.PropertiesResult(
                    target_collection=collection,
                    non_ref_props=properties_pb2.Properties(
                        fields={"chunk": properties_pb2.Value(text_value=dump_chunk(chunk))}
                    ),
                ),
                metadata=meta,
            )
        )
    return search_get_pb2.SearchReply(took=0.003, results=results)
