"""The benchmark notices when the whole machine stood still, and says which steps it spoiled."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench import pauses
from bench.pauses import PauseWatch, seconds_paused
from bench.report import pause_note


class JumpingClock:
    """time.time/time.monotonic that advance one tick per call pair, and once by ``jump_s``."""

    def __init__(self, jump_at: int, jump_s: float) -> None:
        self.reads = 0
        self.now = 1_000.0
        self.jump_at = jump_at
        self.jump_s = jump_s

    def time(self) -> float:
        self.reads += 1
        self.now += 0.1 + (self.jump_s if self.reads == self.jump_at else 0.0)
        return self.now

    def monotonic(self) -> float:
        return self.now


def test_a_sleep_that_takes_seconds_is_recorded_as_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = JumpingClock(jump_at=5, jump_s=26.5)
    monkeypatch.setattr(pauses, "time", clock)
    watch = PauseWatch(tick_s=0.001, threshold_s=1.0)
    watch._stop.wait = lambda timeout: clock.reads >= 20  # type: ignore[method-assign]
    watch._watch()
    assert len(watch.pauses) == 1
    began, seconds = watch.pauses[0]
    assert seconds == pytest.approx(26.5 + 0.1 - 0.001)
    assert began == pytest.approx(1_000.4)


def test_a_machine_that_never_stops_records_no_pause() -> None:
    watch = PauseWatch(tick_s=0.01, threshold_s=1.0).start()
    time.sleep(0.2)
    assert watch.stop() == []


def test_only_the_overlap_with_a_window_counts() -> None:
    stood_still = [(100.0, 10.0), (200.0, 5.0)]
    assert seconds_paused(stood_still, 0.0, 50.0) == 0.0
    assert seconds_paused(stood_still, 105.0, 150.0) == 5.0
    assert seconds_paused(stood_still, 0.0, 300.0) == 15.0
    assert seconds_paused(stood_still, 202.0, 203.0) == 1.0


def step(label: str, start: float, end: float) -> dict[str, Any]:
    return {"label": label, "t_start": start, "t_send_end": end, "t_drained": end + 1}


def test_the_report_names_the_steps_a_pause_fell_into() -> None:
    results: dict[str, Any] = {
        "machine": {"pauses": [(1_500.0, 26.6)]},
        "trackflow": {
            "steps": [step("100%", 1_000.0, 1_020.0), step("80% sust.", 1_100.0, 1_700.0)]
        },
    }
    note = pause_note(results)
    assert note is not None
    assert "stood still 1 time(s)" in note
    assert "in step 80% sust. (26.6 s)" in note
    assert "100%" not in note
    assert pause_note({"machine": {"pauses": []}}) is None
    assert pause_note({"machine": {}}) is None
