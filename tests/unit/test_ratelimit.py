from __future__ import annotations

import math

import pytest

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


def accepted_by_group(workers: list[RateLimits], clock: Clock, seconds: int) -> int:
    """Events let through when 10-event batches arrive round-robin at 3x the limit of 300/s."""
    accepted = 0
    for step in range(seconds * 90):
        clock.now += 1 / 90
        if workers[step % len(workers)].check_tenant("t", 10) is None:
            accepted += 10
    return accepted


def test_a_tenant_limit_holds_across_the_group() -> None:
    clock = Clock()
    workers = [RateLimits("", "300/second", clock) for _ in range(3)]
    for worker in workers:
        worker.set_group_size(3)
    accepted = accepted_by_group(workers, clock, seconds=10)
    # 300/s for 10 s, plus the one-second burst each worker starts with (a third of it each).
    assert accepted == pytest.approx(3300, rel=0.05)


def test_without_the_group_size_each_worker_lets_the_whole_limit_through() -> None:
    clock = Clock()
    workers = [RateLimits("", "300/second", clock) for _ in range(3)]
    assert accepted_by_group(workers, clock, seconds=10) > 2 * 3300


def test_the_share_follows_the_group_size() -> None:
    clock = Clock()
    limits = RateLimits("", "300/second", clock)
    limits.set_group_size(3)
    assert limits.check_tenant("t", 100) is None  # a third of the burst
    assert limits.check_tenant("t", 1) is not None
    limits.set_group_size(1)  # two workers left: this one holds all of it again
    clock.now += 1.0
    assert limits.check_tenant("t", 300) is None
    limits.set_group_size(0)  # before the first assignment: counted as alone
    assert limits.group_size == 1


def test_a_batch_larger_than_the_share_passes_on_a_full_bucket_and_leaves_a_debt() -> None:
    clock = Clock()
    limits = RateLimits("", "300/second", clock)
    limits.set_group_size(3)  # 100 tokens, 100 per second
    assert limits.check_tenant("t", 250) is None
    refused = limits.check_tenant("t", 10)
    assert refused is not None and refused.retry_after_s == 2  # 150 owed + 10, at 100/s: 1.6 s
    clock.now += 1.5
    assert limits.check_tenant("t", 10) is not None
    clock.now += 0.11
    assert limits.check_tenant("t", 10) is None
    assert limits.check_tenant("t", 301) is not None  # larger than the whole limit: never
    assert limits.check_tenant("t", 301).retry_after_s == 3600  # type: ignore[union-attr]
