"""Which routes of the contract the gateway serves.

Prints the served / not-yet-served report (`pytest -s` shows it) and requires every route
of the APIs implemented so far.
"""

from __future__ import annotations

import re

from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from tests import contract

# Routes that must be served: the inference, models, inspect and providers APIs.
REQUIRED = {
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
    ("GET", "/v1/health"),
    ("GET", "/v1/version"),
    ("GET", "/v1/inspect/routes"),
    ("GET", "/v1/providers"),
    ("GET", "/v1/providers/{}"),
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


def test_openai_routes_also_under_v1():
    served = served_routes()
    for method, path in [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/chat/completions"),
        ("GET", "/v1/chat/completions/{}"),
    ]:
        assert (method, path) in served
