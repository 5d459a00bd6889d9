"""Times when the whole machine stood still during a run.

A thread that only sleeps wakes within milliseconds even with every core busy. When one of its
0.1 s sleeps takes seconds, no process ran: the virtual machine was paused (a host snapshot) or
the machine swapped. What the pipeline did in such a window says nothing about the pipeline,
so the report names the steps it fell into.
"""

from __future__ import annotations

import threading
import time

Pause = tuple[float, float]  # wall-clock start (epoch s), seconds the machine stood still


class PauseWatch:
    def __init__(self, tick_s: float = 0.1, threshold_s: float = 1.0) -> None:
        self.tick_s = tick_s
        self.threshold_s = threshold_s
        self.pauses: list[Pause] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pause-watch", daemon=True)

    def start(self) -> PauseWatch:
        self._thread.start()
        return self

    def stop(self) -> list[Pause]:
        self._stop.set()
        self._thread.join()
        return self.pauses

    def _watch(self) -> None:
        wall, mono = time.time(), time.monotonic()
        while not self._stop.wait(self.tick_s):
            now_wall, now_mono = time.time(), time.monotonic()
            # A paused guest's monotonic clock may or may not count the pause; its wall clock
            # is corrected afterwards. Either one jumping is the machine having stood still.
            late = max(now_wall - wall, now_mono - mono) - self.tick_s
            if late >= self.threshold_s:
                self.pauses.append((wall, late))
            wall, mono = now_wall, now_mono


def seconds_paused(pauses: list[Pause], start: float, end: float) -> float:
    """How long the machine stood still between ``start`` and ``end`` (epoch seconds)."""
    total = 0.0
    for began, seconds in pauses:
        overlap = min(end, began + seconds) - max(start, began)
        total += max(overlap, 0.0)
    return total
