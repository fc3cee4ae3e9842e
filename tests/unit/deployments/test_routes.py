"""Which routes of the contract the gateway serves.

Prints the served / not-yet-served report (`pytest -s` shows it) and requires every route
of the APIs implemented so far.
"""

from __future__ import annotations

import re

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
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
