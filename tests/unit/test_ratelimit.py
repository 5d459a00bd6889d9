from __future__ import annotations

import math

from web.ratelimit import RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ip_limit_allows_the_burst_then_refuses_with_retry_after() -> None:
    clock = Clock()
    limits = RateLimits("5/minute", "", clock)
    assert [limits.check_ip("1.2.3.4") for _ in range(5)] == [None] * 5
    limited = limits.check_ip("1.2.3.4")
    assert limited is not None
    assert (limited.scope, limited.limit) == ("ip", "5 per 1 minute")
    assert limited.retry_after_s == 12  # one token refills every 60/5 s
    assert limits.check_ip("5.6.7.8") is None  # other addresses have their own bucket
    clock.now += 12
    assert limits.check_ip("1.2.3.4") is None
    assert limits.check_ip("1.2.3.4") is not None


def test_every_configured_rate_applies() -> None:
    clock = Clock()
    limits = RateLimits("2/second;3/minute", "", clock)
    assert limits.check_ip("a") is None
    assert limits.check_ip("a") is None
    assert limits.check_ip("a").limit == "2 per 1 second"  # type: ignore[union-attr]
    clock.now += 1.0
    assert limits.check_ip("a") is None
    clock.now += 1.0
    assert limits.check_ip("a").limit == "3 per 1 minute"  # type: ignore[union-attr]


def test_tenant_limit_counts_events() -> None:
    clock = Clock()
    limits = RateLimits("", "10/minute", clock)
    assert limits.check_tenant("t", 8) is None
    limited = limits.check_tenant("t", 8)
    assert limited is not None and limited.scope == "tenant"
    assert limited.retry_after_s == math.ceil(6 * 6.0)  # 6 missing tokens at one per 6 s
    too_big = RateLimits("", "10/minute", clock).check_tenant("u", 11)
    assert too_big is not None and too_big.retry_after_s == 3600  # can never fit


def test_empty_limits_allow_everything_and_idle_buckets_are_dropped() -> None:
    clock = Clock()
    assert RateLimits("", "", clock).check_ip("x") is None
    limits = RateLimits("5/second", "", clock)
    for n in range(1000):
        limits.check_ip(f"10.0.{n // 256}.{n % 256}")
    clock.now += 120
    limits.check_ip("fresh")
    assert len(limits._per_ip[0].buckets) == 1
