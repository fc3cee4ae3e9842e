"""Which routes of the contract the gateway serves.

Prints the served / not-yet-served report (`pytest -s` shows it) and requires every route
of the APIs implemented so far.
"""

from __future__ import annotations

import asyncio
import re

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema

from stackray.api.agents import Session
from stackray.deployments.gateway import create_gateway_app
from stackray.deployments.routes import API_ROUTES
from stackray.runtime.calls import local_client
from stackray.runtime.config import StackConfig, parse_config
from stackray.runtime.graph import build_local_stack
from tests import contract

# Routes that must be served: those of every API implemented so far.
REQUIRED = {
    ("GET", "/v1/eval/benchmarks"),
    ("POST", "/v1/eval/benchmarks"),
    ("GET", "/v1/eval/benchmarks/{}"),
    ("POST", "/v1/eval/benchmarks/{}/jobs"),
    ("GET", "/v1/eval/benchmarks/{}/jobs/{}"),
    ("DELETE", "/v1/eval/benchmarks/{}/jobs/{}"),
    ("GET", "/v1/eval/benchmarks/{}/jobs/{}/result"),
    ("POST", "/v1/eval/benchmarks/{}/evaluations"),
    ("GET", "/v1/scoring-functions"),
    ("POST", "/v1/scoring-functions"),
    ("GET", "/v1/scoring-functions/{}"),
    ("POST", "/v1/scoring/score"),
    ("POST", "/v1/scoring/score-batch"),
    ("GET", "/v1/datasets"),
    ("POST", "/v1/datasets"),
    ("GET", "/v1/datasets/{}"),
    ("DELETE", "/v1/datasets/{}"),
    ("GET", "/v1/datasetio/iterrows/{}"),
    ("POST", "/v1/datasetio/append-rows/{}"),
    ("GET", "/v1/models"),
    ("POST", "/v1/models"),
    ("GET", "/v1/models/{}"),
    ("DELETE", "/v1/models/{}"),
    ("GET", "/v1/openai/v1/models"),
    ("POST", "/v1/inference/chat-completion"),
    ("POST", "/v1/inference/completion"),
    ("POST", "/v1/inference/embeddings"),
    ("POST", "/v1/inference/batch-chat-completion"),
    ("POST", "/v1/inference/batch-completion"),
    ("POST", "/v1/openai/v1/chat/completions"),
    ("GET", "/v1/openai/v1/chat/completions"),
    ("GET", "/v1/openai/v1/chat/completions/{}"),
    ("POST", "/v1/openai/v1/completions"),
    ("POST", "/v1/openai/v1/embeddings"),
    ("GET", "/v1/shields"),
    ("POST", "/v1/shields"),
    ("GET", "/v1/shields/{}"),
    ("POST", "/v1/safety/run-shield"),
    ("GET", "/v1/health"),
    ("GET", "/v1/version"),
    ("GET", "/v1/inspect/routes"),
    ("GET", "/v1/providers"),
    ("GET", "/v1/providers/{}"),
    ("POST", "/v1/openai/v1/files"),
    ("GET", "/v1/openai/v1/files"),
    ("GET", "/v1/openai/v1/files/{}"),
    ("DELETE", "/v1/openai/v1/files/{}"),
    ("GET", "/v1/openai/v1/files/{}/content"),
    # tool groups, tools and the tool runtime
    ("GET", "/v1/toolgroups"),
    ("POST", "/v1/toolgroups"),
    ("GET", "/v1/toolgroups/{}"),
    ("DELETE", "/v1/toolgroups/{}"),
    ("GET", "/v1/tools"),
    ("GET", "/v1/tools/{}"),
    ("GET", "/v1/tool-runtime/list-tools"),
    ("POST", "/v1/tool-runtime/invoke"),
    # agents
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{}"),
    ("DELETE", "/v1/agents/{}"),
    ("POST", "/v1/agents/{}/session"),
    ("GET", "/v1/agents/{}/sessions"),
    ("GET", "/v1/agents/{}/session/{}"),
    ("DELETE", "/v1/agents/{}/session/{}"),
    ("POST", "/v1/agents/{}/session/{}/turn"),
    ("GET", "/v1/agents/{}/session/{}/turn/{}"),
    ("POST", "/v1/agents/{}/session/{}/turn/{}/resume"),
    ("GET", "/v1/agents/{}/session/{}/turn/{}/step/{}"),
    ("POST", "/v1/openai/v1/responses"),
    ("GET", "/v1/openai/v1/responses"),
    ("GET", "/v1/openai/v1/responses/{}"),
    ("GET", "/v1/openai/v1/responses/{}/input_items"),
    ("GET", "/v1/vector-dbs"),
    ("POST", "/v1/vector-dbs"),
    ("GET", "/v1/vector-dbs/{}"),
    ("DELETE", "/v1/vector-dbs/{}"),
    ("POST", "/v1/vector-io/insert"),
    ("POST", "/v1/vector-io/query"),
    # OpenAI vector stores and the RAG tool
    ("POST", "/v1/tool-runtime/rag-tool/insert"),
    ("GET", "/v1/openai/v1/vector_stores/{}/files"),
    ("POST", "/v1/openai/v1/vector_stores/{}/files"),
    ("GET", "/v1/openai/v1/vector_stores"),
    ("POST", "/v1/openai/v1/vector_stores"),
    ("GET", "/v1/openai/v1/vector_stores/{}"),
    ("POST", "/v1/openai/v1/vector_stores/{}"),
    ("DELETE", "/v1/openai/v1/vector_stores/{}"),
    ("GET", "/v1/openai/v1/vector_stores/{}/files/{}"),
    ("POST", "/v1/openai/v1/vector_stores/{}/files/{}"),
    ("DELETE", "/v1/openai/v1/vector_stores/{}/files/{}"),
    ("GET", "/v1/openai/v1/vector_stores/{}/files/{}/content"),
    ("POST", "/v1/openai/v1/vector_stores/{}/search"),
    ("POST", "/v1/tool-runtime/rag-tool/query"),
    ("POST", "/v1/telemetry/events"),
    ("POST", "/v1/telemetry/traces"),
    ("GET", "/v1/telemetry/traces/{}"),
    ("GET", "/v1/telemetry/traces/{}/spans/{}"),
    ("POST", "/v1/telemetry/spans/{}/tree"),
    ("POST", "/v1/telemetry/spans"),
    ("POST", "/v1/telemetry/spans/export"),
    ("POST", "/v1/telemetry/metrics/{}"),
}


def normalize(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def served_routes() -> set[tuple[str, str]]:
    stack = parse_config({"version": 2, "image_name": "routes", "apis": ["inference"]})
    app = create_gateway_app(stack, {})
    served = set()
    for route in app.routes:
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                served.add((method, normalize(route.path)))  # type: ignore[attr-defined]
    return served


def test_contract_route_coverage():
    served = served_routes()
    wanted = {(r.method, normalize(r.path)) for r in contract.routes()}
    assert len(contract.routes()) == 107
    covered = sorted(wanted & served)
    missing = sorted(wanted - served)
    print(f"\ncontract routes served: {len(covered)}/{len(wanted)}")
    for method, path in missing:
        print(f"  not yet: {method} {path}")
    assert REQUIRED <= wanted, sorted(REQUIRED - wanted)
    assert REQUIRED <= served, sorted(REQUIRED - served)


def test_routes_beyond_the_contract():
    # Deleting a shield (newer Llama Stack releases have it; the contract does not).
    assert ("DELETE", "/v1/shields/{}") in served_routes()


def test_openai_routes_also_under_v1():
    served = served_routes()
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/chat/completions"),
        ("GET", "/v1/chat/completions/{}"),
        ("POST", "/v1/files"),
        ("GET", "/v1/files"),
        ("GET", "/v1/files/{}"),
        ("DELETE", "/v1/files/{}"),
        ("GET", "/v1/files/{}/content"),
        ("POST", "/v1/moderations"),
        ("POST", "/v1/openai/v1/moderations"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/{}/input_items"),
    ]:
        assert (method, path) in served


# ---- the served OpenAPI against the contract ---------------------------------------------

# Where the served description differs from the contract on purpose, and why. Anything
# else that differs fails the test.
KNOWN_DIFFERENCES = {
    # Optional here (defaults): bodies the contract's clients send still validate.
    ("body", "POST", "/v1/tool-runtime/rag-tool/insert"): "chunk_size_in_tokens defaults to 512",
    ("body", "POST", "/v1/tool-runtime/invoke"): "kwargs defaults to {} (a tool without arguments)",
    ("body", "POST", "/v1/openai/v1/vector_stores"): "name is optional, as in OpenAI's API",
    ("body", "POST", "/v1/safety/run-shield"): "params defaults to {}",
    ("body", "POST", "/v1/scoring/score-batch"): "save_results_dataset defaults to false",
    ("body", "POST", "/v1/openai/v1/vector_stores/{}/search"): "search_mode (newer releases)",
    (
        "body",
        "POST",
        "/v1/openai/v1/responses",
    ): "max_output_tokens, top_p, include, as OpenAI takes them",
    # Responses with fields the OpenAI SDK reads besides the contract's.
    ("response", "POST", "/v1/openai/v1/responses"): "usage, incomplete_details, max_output_tokens",
    (
        "response",
        "GET",
        "/v1/openai/v1/responses/{}",
    ): "usage, incomplete_details, max_output_tokens",
    ("response", "GET", "/v1/openai/v1/chat/completions/{}"): "usage, as OpenAI returns it",
    ("response", "POST", "/v1/openai/v1/completions"): "usage, as OpenAI returns it",
    ("response", "GET", "/v1/openai/v1/models"): "object: list, as OpenAI returns it",
    ("response", "GET", "/v1/openai/v1/vector_stores/{}/files/{}/content"): "OpenAI's page",
    # The contract's is a oneOf of the completion and its stream chunk.
    ("response", "POST", "/v1/openai/v1/chat/completions"): "the completion (SSE if streamed)",
}


def _served_openapi() -> dict:
    stack = parse_config({"version": 2, "image_name": "routes", "apis": ["inference"]})
    return create_gateway_app(stack, {}).openapi()


def _deref(node: dict | None, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = root["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node or {}


def _json_schema(part: dict, root: dict) -> dict | None:
    schema = part.get("content", {}).get("application/json", {}).get("schema")
    return _deref(schema, root) if schema is not None else None


def _operations(spec: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), normalize(path)): op
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def test_served_openapi_matches_the_contract_field_for_field():
    spec = _served_openapi()
    contract_spec = contract.load()
    served = _operations(spec)
    differences = {}
    for key, theirs in _operations(contract_spec).items():
        ours = served.get(key)
        if ours is None:
            continue  # not served yet: test_contract_route_coverage reports it
        method, path = key
        their_body = _json_schema(theirs.get("requestBody", {}), contract_spec)
        our_body = _json_schema(ours.get("requestBody", {}), spec)
        if their_body is not None:
            assert our_body is not None, f"{method} {path}: no request body described"
            mine = (set(our_body.get("properties", {})), set(our_body.get("required", [])))
            want = (set(their_body.get("properties", {})), set(their_body.get("required", [])))
            if mine != want:
                differences[("body", method, path)] = (mine, want)
        their_query = {p["name"] for p in theirs.get("parameters", []) if p["in"] == "query"}
        our_query = {p["name"] for p in ours.get("parameters", []) if p["in"] == "query"}
        assert our_query == their_query, f"{method} {path}: query {our_query} != {their_query}"
        their_resp = _json_schema(theirs.get("responses", {}).get("200", {}), contract_spec)
        our_resp = _json_schema(ours.get("responses", {}).get("200", {}), spec)
        if their_resp is not None and set(their_resp.get("properties", {})) != set(
            (our_resp or {}).get("properties", {})
        ):
            differences[("response", method, path)] = (our_resp, their_resp)
    unexplained = sorted(set(differences) - set(KNOWN_DIFFERENCES))
    assert not unexplained, unexplained
    # A difference that went away is taken off the list.
    assert sorted(set(KNOWN_DIFFERENCES) - set(differences)) == []


def test_every_declared_route_describes_what_it_answers():
    for route in API_ROUTES:
        if route.empty or route.handler in ("file_content", "plain_json"):
            # null, the file's own bytes, or a plain JSON object
            assert route.returns is None, route
        else:
            assert route.returns is not None, route
        if route.stream is not None:
            assert route.body is not None and "stream" in route.body.model_fields, route


def test_list_query_parameters_take_comma_separated_values():
    class Sessions:
        async def get_agents_session(self, agent_id, session_id, turn_ids):
            return (
                None
                if turn_ids is None
                else Session(
                    session_id=session_id,
                    session_name=",".join(turn_ids),
                    turns=[],
                    started_at="2026-01-01T00:00:00Z",
                )
            )

    stack = parse_config({"version": 2, "image_name": "routes", "apis": ["agents"]})
    app = create_gateway_app(stack, {"agents": local_client(Sessions(), "agents")})
    with TestClient(app) as c:
        one = c.get("/v1/agents/a/session/s", params={"turn_ids": "t1,t2"}).json()
        repeated = c.get("/v1/agents/a/session/s", params=[("turn_ids", "t1"), ("turn_ids", "t2")])
    assert one["session_name"] == "t1,t2" and repeated.json()["session_name"] == "t1,t2"


class _Accepting:
    """An API deployment that accepts every call (the gateway's validation is under test)."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name.endswith("_stream"):

            async def chunks(*args):
                return
                yield

            return chunks

        async def answer(*args):
            return None

        return answer


def _sender(client: TestClient, method: str, url: str, schema: dict, refused: list[str]):
    @settings(
        max_examples=3,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(from_schema(schema))
    def send(example):
        r = client.request(method, url, json=example)
        if r.status_code in (400, 422):
            refused.append(f"{method} {url}: {r.json()['detail']}")

    return send


def test_every_body_the_openapi_describes_is_accepted():
    """Bodies drawn from the served OpenAPI's own request schemas pass the gateway's
    validation: the description says exactly what is validated (a client generated
    from it sends nothing the server then refuses)."""
    apis = ("inference", "vector_io", "files", "safety", "tool_runtime", "agents", "telemetry")
    stack = parse_config({"version": 2, "image_name": "routes", "apis": ["inference"]})
    app = create_gateway_app(stack, {a: local_client(_Accepting(), a) for a in apis})
    spec = app.openapi()
    refused: list[str] = []
    with TestClient(app) as client:
        for path, ops in spec["paths"].items():
            if path.startswith("/v1/openai/v1/"):
                continue  # the same declarations as under /v1
            for method, op in ops.items():
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                if body is None:
                    continue
                url = re.sub(r"\{[^}]*\}", "x", path)
                schema = {**body["schema"], "components": spec["components"]}

                _sender(client, method.upper(), url, schema, refused)()
    assert not refused, refused


def _fuzz_stack(tmp_path) -> StackConfig:
    return parse_config(
        {
            "version": 2,
            "image_name": "fuzz",
            "apis": ["inference", "vector_io", "files", "tool_runtime", "agents", "telemetry"],
            "providers": {
                "inference": [
                    {
                        "provider_id": "echo",
                        "provider_type": "remote::echo",
                        "module": "stackray_echo",
                    }
                ],
                "vector_io": [{"provider_id": "faiss", "provider_type": "inline::faiss"}],
                "files": [{"provider_id": "localfs", "provider_type": "inline::localfs"}],
                "tool_runtime": [{"provider_id": "rag", "provider_type": "inline::rag-runtime"}],
                "agents": [{"provider_id": "meta", "provider_type": "inline::meta-reference"}],
                "telemetry": [{"provider_id": "meta", "provider_type": "inline::meta-reference"}],
            },
            "models": [
                {"model_id": "m", "provider_id": "echo"},
                {
                    "model_id": "e",
                    "provider_id": "echo",
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 8},
                },
            ],
            "vector_dbs": [{"vector_db_id": "x", "embedding_model": "e"}],
            "storage": {"data_dir": str(tmp_path)},
        }
    )


def test_no_body_the_openapi_describes_makes_a_server_error(tmp_path):
    """Bodies drawn from the served OpenAPI, sent to a real in-process stack (every API
    but safety, the echo model, faiss, localfs, the RAG tool, agents, telemetry), with
    `x` for every path id (the vector db `x` exists): each answer is a success or a 4xx,
    never a 5xx."""
    stack = _fuzz_stack(tmp_path)
    routers = asyncio.run(build_local_stack(stack))
    app = create_gateway_app(stack, routers)
    spec = app.openapi()
    failures: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, ops in spec["paths"].items():
            if path.startswith("/v1/openai/v1/"):
                continue  # the same declarations as under /v1
            for method, op in ops.items():
                url = re.sub(r"\{[^}]*\}", "x", path)
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                if body is None:
                    r = client.request(method.upper(), url)
                    if r.status_code >= 500:
                        failures.append(f"{method.upper()} {url}: {r.status_code} {r.text[:200]}")
                    continue
                schema = {**body["schema"], "components": spec["components"]}
                _server_error_sender(client, method.upper(), url, schema, failures)()
    assert not failures, failures


def _server_error_sender(client: TestClient, method: str, url: str, schema: dict, failures):
    @settings(
        max_examples=3,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(from_schema(schema))
    def send(example):
        r = client.request(method, url, json=example)
        if r.status_code >= 500:
            failures.append(f"{method} {url}: {r.status_code} {r.text[:300]} <- {example!r:.300}")

    return send
