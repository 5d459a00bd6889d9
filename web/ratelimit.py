"""Per-IP (requests) and per-tenant (events) rate limits: token buckets, O(1) per request.

Limits are written like ``"100/second;3000/minute"`` (parsed with the library `limits`). The
buckets are kept here rather than in `limits`' in-memory storage: that storage sweeps every key
on a 10 ms timer, which costs a core's worth of time once a site has tens of thousands of
visitor addresses. Idle buckets are dropped lazily, once per sweep interval.

Counters live in this worker's memory. Per-tenant limits hold for the whole group of workers:
each worker enforces ``1/N`` of a tenant's limit, N being the members of the raw topic's consumer
group (``set_group_size``, fed from the group's latest assignment), so that N workers behind a
load balancer that spreads a tenant's requests evenly let it through at its limit in total.
Per-IP limits stay per worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many

SWEEP_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Limited:
    scope: str  # "ip" or "tenant"
    limit: str
    retry_after_s: int


@dataclass(frozen=True)
class Rate:
    text: str
    capacity: float  # tokens a burst may spend (the limit's amount)
    per_second: float  # refill rate

    @classmethod
    def of(cls, item: RateLimitItem) -> Rate:
        return cls(str(item), float(item.amount), item.amount / item.get_expiry())


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class Buckets:
    """Token buckets for one rate, by key; this worker holds ``share`` of the rate."""

    rate: Rate
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, Bucket] = field(default_factory=dict)
    last_sweep: float = 0.0
    share: float = 1.0

    def take(self, key: str, cost: int) -> float:
        """Spend ``cost`` tokens; 0.0 when allowed, else the seconds until they are there."""
        if cost > self.rate.capacity:
            return math.inf  # more than the whole limit: never fits, on any worker
        capacity = self.rate.capacity * self.share
        per_second = self.rate.per_second * self.share
        now = self.clock()
        self._sweep(now)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(capacity, now)
        else:
            refill = (now - bucket.updated) * per_second
            bucket.tokens = min(capacity, bucket.tokens + refill)
            bucket.updated = now
        # A request larger than this worker's share of the burst passes on a full bucket and
        # leaves a debt that the refill pays off: the average rate still holds.
        needed = min(cost, capacity)
        if bucket.tokens >= needed:
            bucket.tokens -= cost
            return 0.0
        return (needed - bucket.tokens) / per_second

    def _sweep(self, now: float) -> None:
        if now - self.last_sweep < SWEEP_INTERVAL_S:
            return
        self.last_sweep = now
        full_after = self.rate.capacity / self.rate.per_second
        idle = [k for k, b in self.buckets.items() if now - b.updated >= full_after]
        for key in idle:  # a bucket idle long enough to be full again carries no state
            del self.buckets[key]


class RateLimits:
    def __init__(
        self, per_ip: str, per_tenant: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_ip = [Buckets(Rate.of(i), clock) for i in _parse(per_ip)]
        self._per_tenant = [Buckets(Rate.of(i), clock) for i in _parse(per_tenant)]
        self.group_size = 1

    def set_group_size(self, members: int) -> None:
        """Hold 1/members of each tenant limit here (members: workers sharing the limits)."""
        members = max(members, 1)
        if members != self.group_size:
            self.group_size = members
            for buckets in self._per_tenant:
                buckets.share = 1 / members

    @staticmethod
    def _check(scope: str, limits: list[Buckets], key: str, cost: int) -> Limited | None:
        for buckets in limits:
            wait = buckets.take(key, cost)
            if wait:
                retry = 3600 if math.isinf(wait) else max(1, math.ceil(wait))
                return Limited(scope, buckets.rate.text, retry)
        return None

    def check_ip(self, ip: str | None) -> Limited | None:
        return self._check("ip", self._per_ip, ip or "unknown", 1)

    def check_tenant(self, tenant: str, events: int) -> Limited | None:
        return self._check("tenant", self._per_tenant, tenant, max(events, 1))


def _parse(text: str) -> list[RateLimitItem]:
    return parse_many(text) if text.strip() else []
