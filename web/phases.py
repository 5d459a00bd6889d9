"""How long each step of an accepted POST took: a metric per step, a log line for slow ones."""

from __future__ import annotations

import logging
import time

from trackflow_app import metrics

log = logging.getLogger(__name__)


class PhaseTimer:
    """Durations of a request's steps, for EDGE_PHASE_SECONDS and the slow-request log."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.phases: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = now - self.last
        self.last = now

    def report(self, slow_s: float) -> None:
        for phase, seconds in self.phases.items():
            metrics.EDGE_PHASES[phase].observe(seconds)
        total = self.last - self.started
        if slow_s and total > slow_s:
            steps = " ".join(
                f"{phase}={seconds * 1000:.1f}ms" for phase, seconds in self.phases.items()
            )
            log.warning("slow POST /v1/batch: %.0f ms (%s)", total * 1000, steps)
