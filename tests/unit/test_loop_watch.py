"""The event-loop stall watch: when a stall is reported, and what the log says."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time

import pytest

from trackflow_app.loop_watch import (
    GC_PAUSE_SECONDS,
    LoopWatch,
    StallTracker,
    thread_stack,
    time_gc_pauses,
)


def test_a_stall_is_reported_once_and_its_length_when_it_ends() -> None:
    tracker = StallTracker(threshold_s=0.1)
    tracker.beat(10.0)
    assert not tracker.check(10.05)
    assert tracker.check(10.2)
    assert not tracker.check(10.3)  # the same stall
    assert tracker.beat(10.4) == pytest.approx(0.4)
    assert tracker.stalls == 1
    assert tracker.beat(10.41) is None


def test_a_loop_on_time_is_never_reported() -> None:
    tracker = StallTracker(threshold_s=0.1)
    for tick in range(100):
        now = tick * 0.05
        tracker.beat(now)
        assert not tracker.check(now + 0.09)
    assert tracker.stalls == 0


def test_lateness_counts_from_when_the_next_beat_was_due() -> None:
    tracker = StallTracker(threshold_s=0.1, interval_s=0.05)
    tracker.beat(10.0)
    assert not tracker.check(10.14)  # the next beat was due at 10.05: 90 ms late
    assert tracker.check(10.16)
    assert tracker.beat(10.3) == pytest.approx(0.25)
    for tick in range(1, 100):  # beats on time, each looked at just before the next is due
        tracker.beat(10.3 + tick * 0.05)
        assert not tracker.check(10.3 + tick * 0.05 + 0.149)
    assert tracker.stalls == 1


def test_the_watch_looks_five_times_per_threshold_unless_told() -> None:
    watch = LoopWatch(threshold_s=0.25)
    assert watch.interval_s == pytest.approx(0.05)
    assert watch.tracker.interval_s == pytest.approx(0.05)
    assert LoopWatch(threshold_s=0.25, interval_s=0.01).tracker.interval_s == 0.01


def blocking_function(seconds: float) -> None:
    time.sleep(seconds)


def test_the_stack_names_the_function_holding_the_thread() -> None:
    started = threading.Event()

    def run() -> None:
        started.set()
        blocking_function(0.3)

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    time.sleep(0.05)
    assert thread.ident is not None
    stack = thread_stack(thread.ident)
    thread.join()
    assert stack.startswith("test_loop_watch.py:")
    assert "blocking_function" in stack.split(" <- ")[0]


def test_a_blocked_loop_is_logged_with_its_stack(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        watch = LoopWatch(threshold_s=0.05, interval_s=0.005)
        watch.start()
        await asyncio.sleep(0.05)
        blocking_function(0.3)
        await asyncio.sleep(0.05)
        watch.stop()

    with caplog.at_level(logging.WARNING, logger="trackflow_app.loop_watch"):
        asyncio.run(main())
    messages = [record.getMessage() for record in caplog.records]
    assert any("blocked for" in m and "blocking_function" in m for m in messages), messages
    ended = [m for m in messages if m.startswith("event loop was blocked for")]
    assert len(ended) == 1
    assert 250 <= float(ended[0].split()[-2]) <= 1000


def test_gc_pauses_are_observed_and_slow_ones_logged(caplog: pytest.LogCaptureFixture) -> None:
    ticks = iter([0.0, 0.2])
    callback = time_gc_pauses(0.1, clock=lambda: next(ticks))
    gc.callbacks.remove(callback)  # driven by hand, not by real collections
    before = GC_PAUSE_SECONDS.labels("2")._sum.get()
    with caplog.at_level(logging.WARNING, logger="trackflow_app.loop_watch"):
        callback("start", {"generation": 2})
        callback("stop", {"generation": 2, "collected": 5})
    assert GC_PAUSE_SECONDS.labels("2")._sum.get() - before == pytest.approx(0.2)
    assert "generation 2 took 200 ms" in caplog.text


def test_a_slow_post_is_logged_with_each_step(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackflow_app import metrics
    from web import phases

    clock = iter([100.0, 100.001, 100.003, 100.004, 101.5])
    monkeypatch.setattr(phases.time, "monotonic", lambda: next(clock))
    ack_before = metrics.EDGE_PHASES["ack"]._sum.get()
    timer = phases.PhaseTimer()
    for phase in ("body", "decode", "enqueue", "ack"):
        timer.mark(phase)
    with caplog.at_level(logging.WARNING, logger="web.phases"):
        timer.report(slow_s=1.0)
        timer.report(slow_s=0)
    assert metrics.EDGE_PHASES["ack"]._sum.get() - ack_before == pytest.approx(2 * 1.496)
    assert caplog.messages == [
        "slow POST /v1/batch: 1500 ms (body=1.0ms decode=2.0ms enqueue=1.0ms ack=1496.0ms)"
    ]
