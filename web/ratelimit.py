"""Per-IP (requests) and per-tenant (events) rate limits, with the library `limits`.

The asyncio flavour of its in-memory storage expires counters with a task on the event loop;
the threaded one starts a timer thread every few milliseconds under steady traffic.

Counters live in this worker's memory: with N workers behind a load balancer, each enforces
its share, so the effective limit is up to N times the configured one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter


@dataclass(frozen=True)
class Limited:
    scope: str  # "ip" or "tenant"
    limit: str
    retry_after_s: int


class RateLimits:
    def __init__(self, per_ip: str, per_tenant: str) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._per_ip: list[RateLimitItem] = parse_many(per_ip) if per_ip.strip() else []
        self._per_tenant: list[RateLimitItem] = parse_many(per_tenant) if per_tenant.strip() else []

    async def _check(
        self, scope: str, items: list[RateLimitItem], key: str, cost: int
    ) -> Limited | None:
        for item in items:
            if not await self._limiter.hit(item, scope, key, cost=cost):
                reset = (await self._limiter.get_window_stats(item, scope, key)).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                return Limited(scope, str(item), wait)
        return None

    async def check_ip(self, ip: str | None) -> Limited | None:
        return await self._check("ip", self._per_ip, ip or "unknown", 1)

    async def check_tenant(self, tenant: str, events: int) -> Limited | None:
        return await self._check("tenant", self._per_tenant, tenant, max(events, 1))
