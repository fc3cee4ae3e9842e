"""`server.quota`: requests per period per caller, counted in a store shared by every
gateway replica (here two gateway apps over one SQLite file), 429 with `Retry-After`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackray.api.errors import ConfigError, QuotaExceededError
from stackray.deployments.gateway import create_gateway_app
from stackray.runtime.config import parse_config
from stackray.runtime.graph import build_local_stack
from stackray.runtime.quota import QuotaConfig, QuotaCounter

KEYS = {"alice": "alice-key-0123456789abcdef", "bob": "bob-key-0123456789abcdef"}


def quota_config(tmp_path: Any, **limits: Any) -> QuotaConfig:
    return QuotaConfig.model_validate(
        {"kvstore": {"type": "sqlite", "db_path": str(tmp_path / "quota.db")}, **limits}
    )


def test_counts_per_caller_and_period(tmp_path):
    counter = QuotaCounter(quota_config(tmp_path, authenticated_max_requests=2, period="hour"))
    # 10 s into the next hour (counters expire by the real clock when their period ends)
    start = (time.time() // 3600 + 1) * 3600 + 10
    counter.check("alice", True, now=start)
    counter.check("alice", True, now=start + 1)
    with pytest.raises(QuotaExceededError) as info:
        counter.check("alice", True, now=start + 2)
    assert info.value.status_code == 429
    assert info.value.retry_after_s == 3600 - 12  # type: ignore[attr-defined]
    counter.check("bob", True, now=start + 2)  # another caller counts apart
    counter.check("alice", False, now=start + 2)  # so does the anonymous count
    counter.check("alice", True, now=start + 3600)  # the next hour starts again


def test_bad_quota_config_is_refused_naming_the_field(tmp_path):
    base = {"version": 2, "image_name": "q", "apis": []}
    with pytest.raises(ConfigError, match="server.quota.period"):
        parse_config(dict(base, server={"quota": {"kvstore": {"db_path": "x"}, "period": "week"}}))
    with pytest.raises(ConfigError, match="server.quota.anonymous_max_requests"):
        parse_config(
            dict(
                base, server={"quota": {"kvstore": {"db_path": "x"}, "anonymous_max_requests": -1}}
            )
        )


def stack_raw(tmp_path: Any, auth: bool) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "version": 2,
        "image_name": "quota",
        "apis": ["inference"],
        "providers": {
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
            ]
        },
        "models": [{"model_id": "m", "provider_id": "echo"}],
        "server": {
            "quota": {
                "kvstore": {"type": "sqlite", "db_path": str(tmp_path / "quota.db")},
                "authenticated_max_requests": 3,
                "anonymous_max_requests": 2,
            }
        },
        "storage": {"data_dir": str(tmp_path)},
    }
    if auth:
        raw["server"]["auth"] = {
            "provider_type": "api_key",
            "config": {"keys": [{"key": k, "principal": p} for p, k in KEYS.items()]},
        }
    return raw


def gateways(tmp_path: Any, auth: bool) -> list[TestClient]:
    """Two gateway apps (as two replicas) over one stack state and one quota store."""
    stack = parse_config(stack_raw(tmp_path, auth))
    routers = asyncio.run(build_local_stack(stack))
    return [TestClient(create_gateway_app(stack, routers)) for _ in range(2)]


def test_the_quota_holds_across_gateway_replicas(tmp_path):
    one, two = gateways(tmp_path, auth=True)
    alice = {"Authorization": f"Bearer {KEYS['alice']}"}
    bob = {"Authorization": f"Bearer {KEYS['bob']}"}
    answers = [gw.get("/v1/models", headers=alice).status_code for gw in (one, two, one)]
    assert answers == [200, 200, 200]
    over = two.get("/v1/models", headers=alice)
    assert over.status_code == 429
    assert over.json()["error"]["type"] == "rate_limit_error"
    assert 0 < int(over.headers["retry-after"]) <= 86400
    assert one.get("/v1/models", headers=alice).status_code == 429
    assert one.get("/v1/models", headers=bob).status_code == 200  # bob has his own
    # Probes are not counted, and unauthenticated requests are refused before counting.
    assert all(one.get("/v1/health").status_code == 200 for _ in range(5))
    assert one.get("/v1/models").status_code == 401
    assert two.get("/v1/models", headers=bob).status_code == 200


def test_anonymous_callers_are_counted_by_address(tmp_path):
    one, two = gateways(tmp_path, auth=False)
    assert [gw.get("/v1/models").status_code for gw in (one, two, one)] == [200, 200, 429]
