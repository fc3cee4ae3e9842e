"""Request quotas: Llama Stack 0.2.12's `server.quota`.

Each caller may make `authenticated_max_requests` requests per period (an authenticated
principal) or `anonymous_max_requests` (a client address, when the request carries no
credential: a stack without `server.auth`). The counters live in `kvstore`, one counter
per caller and period, incremented atomically, so every gateway replica shares them (a
SQLite file on one node; PostgreSQL on a cluster). A request over the limit gets 429
with `Retry-After` (seconds until the period ends). `/v1/health` and `/v1/version` are
not counted: probes would use up the quota.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stackray.api.errors import QuotaExceededError
from stackray.runtime.storage import KVStore, StoreConfig, open_kvstore

PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class QuotaConfig(BaseModel):
    """`server.quota`."""

    model_config = ConfigDict(extra="forbid")

    kvstore: StoreConfig = Field(
        description="Where the counters live (sqlite on one node, postgres on a cluster)."
    )
    anonymous_max_requests: int = Field(
        default=100, ge=0, description="Requests per period of a caller without credentials."
    )
    authenticated_max_requests: int = Field(
        default=1000, ge=0, description="Requests per period of an authenticated principal."
    )
    period: Literal["day", "hour", "minute"] = Field(
        default="day", description="The period the counts are for (0.2.12 has day only)."
    )


class QuotaCounter:
    """Counts requests per caller and period in the shared store."""

    def __init__(self, config: QuotaConfig, store: KVStore | None = None) -> None:
        self.config = config
        self.window_s = PERIOD_SECONDS[config.period]
        self.store = store if store is not None else open_kvstore(config.kvstore)

    def check(self, caller: str, authenticated: bool, now: float | None = None) -> None:
        """Count one request of `caller`; `QuotaExceededError` (with `retry_after_s`) when
        it is over the limit."""
        now = time.time() if now is None else now
        window = int(now // self.window_s)
        ends = (window + 1) * self.window_s
        limit = (
            self.config.authenticated_max_requests
            if authenticated
            else self.config.anonymous_max_requests
        )
        kind = "user" if authenticated else "anonymous"
        count = self.store.increment(
            f"quota:{kind}:{caller}:{window}", datetime.fromtimestamp(ends, timezone.utc)
        )
        if count > limit:
            err = QuotaExceededError(f"quota exceeded: {limit} requests per {self.config.period}")
            err.retry_after_s = max(1, int(ends - now + 0.999))  # type: ignore[attr-defined]
            raise err
