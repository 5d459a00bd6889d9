"""Event-loop stall watch: notices when the worker's event loop has not run for a while and logs
where it is stuck, and times the garbage collector's pauses.

Every POST, every stage and the sink's mapping share one event loop; anything that holds it
(a long synchronous call, a collection of a large heap, another thread holding the GIL) delays
every request at once, which a POST's tail latency shows but no handler's own timing does. A
heartbeat task stamps the loop's progress; a watcher thread compares the stamp with the clock
and, once the loop is late by more than the threshold, logs the loop thread's stack at that
moment (one line per stall, and its full length when it ends).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram

log = logging.getLogger(__name__)

LOOP_LAG_SECONDS = Histogram(
    "trackflow_event_loop_lag_seconds",
    "How late the event loop ran a task scheduled to run now",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
GC_PAUSE_SECONDS = Histogram(
    "trackflow_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector",
    ["generation"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)


@dataclass
class StallTracker:
    """Decides, from the loop's last heartbeat, when a stall starts and ends (no I/O)."""

    threshold_s: float
    interval_s: float = 0.0  # the heartbeat's period: the next beat is due this long after one
    last_beat: float = 0.0
    stalled: bool = False
    stalls: int = 0

    def late_by(self, now: float) -> float:
        """How long after its due time the next heartbeat still has not come."""
        return now - self.last_beat - self.interval_s

    def beat(self, now: float) -> float | None:
        """Record a heartbeat; returns how late it came if a stall just ended, else None."""
        late = self.late_by(now)
        self.last_beat = now
        if not self.stalled:
            return None
        self.stalled = False
        return late

    def check(self, now: float) -> bool:
        """True once per stall: when the loop is first seen late by more than the threshold."""
        if self.stalled or self.late_by(now) <= self.threshold_s:
            return False
        self.stalled = True
        self.stalls += 1
        return True


def thread_stack(thread_id: int, limit: int = 8) -> str:
    """The innermost frames a thread is running, innermost first, as 'file:line function'
    parts (no source lines read: this runs while the loop is stuck)."""
    frame = sys._current_frames().get(thread_id)
    parts: list[str] = []
    while frame is not None and len(parts) < limit:
        code = frame.f_code
        parts.append(f"{code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return " <- ".join(parts) if parts else "<thread gone>"


class LoopWatch:
    """The heartbeat task and the watcher thread around a StallTracker."""

    def __init__(self, threshold_s: float, interval_s: float | None = None) -> None:
        # A fifth of the threshold: each beat and each look wakes a thread (the watcher's wants
        # the GIL), and at 100 Hz the two cost an idle worker ~13 ms of CPU a second.
        self.interval_s = threshold_s / 5 if interval_s is None else interval_s
        self.tracker = StallTracker(threshold_s, self.interval_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop_thread = 0  # the thread that runs the loop, known once started
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat(time.monotonic())
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    async def _heartbeat(self) -> None:
        while True:
            due = time.monotonic() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            LOOP_LAG_SECONDS.observe(max(now - due, 0.0))
            self._beat(now)

    def _beat(self, now: float) -> None:
        with self._lock:
            ended = self.tracker.beat(now)
        if ended is not None:
            log.warning("event loop was blocked for %.0f ms", ended * 1000)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            with self._lock:
                late = self.tracker.late_by(now)
                started = self.tracker.check(now)
            if started:
                log.warning(
                    "event loop blocked for %.0f ms so far, at: %s",
                    late * 1000,
                    thread_stack(self._loop_thread),
                )


def time_gc_pauses(
    slow_s: float, clock: Callable[[], float] = time.perf_counter
) -> Callable[..., None]:
    """Install a gc callback that observes every collection's pause (and logs slow ones)."""
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started["at"] = clock()
            return
        now = clock()
        pause = now - started.pop("at", now)
        generation = info.get("generation", -1)
        GC_PAUSE_SECONDS.labels(str(generation)).observe(pause)
        if slow_s and pause > slow_s:
            log.warning(
                "garbage collection of generation %s took %.0f ms (%s collected)",
                generation,
                pause * 1000,
                info.get("collected"),
            )

    gc.callbacks.append(on_gc)
    return on_gc
