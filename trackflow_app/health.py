"""Progress of the stages that hold records uncommitted, for readiness and metrics. No I/O.

A stage reports when it starts holding records, when it commits them, and when its writes fail.
``/readyz`` turns that into "not ready" once a stage has been stuck for ``stall_after_s``: records
waiting that long uncommitted, or writes failing that long. Reading the store with ``SELECT 1``
alone said "ready" while every insert failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from trackflow_app import metrics


@dataclass
class StageHealth:
    name: str
    stall_after_s: float
    pending_since: float | None = None  # monotonic time the oldest uncommitted record arrived
    failing_since: float | None = None  # monotonic time of the first failure of this streak
    last_error: str = ""
    lag: int = 0  # records known to wait upstream (read from Kafka, not yet taken)
    last_commit_at: float = field(default_factory=time.monotonic)

    def holding(self, now: float) -> None:
        if self.pending_since is None:
            self.pending_since = now

    def committed(self, now: float) -> None:
        self.pending_since = None
        self.failing_since = None
        self.last_error = ""
        self.last_commit_at = now

    def released(self) -> None:
        """The records held were given up uncommitted (they are re-read from Kafka)."""
        self.pending_since = None

    def failed(self, now: float, error: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = now
        self.last_error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"

    def pending_age(self, now: float) -> float:
        return 0.0 if self.pending_since is None else max(now - self.pending_since, 0.0)

    def problem(self, now: float) -> str | None:
        """Why this stage is stuck, or None while it makes progress."""
        if self.failing_since is not None and now - self.failing_since >= self.stall_after_s:
            return (
                f"{self.name}: writes have failed for {now - self.failing_since:.0f} s "
                f"(last error: {self.last_error})"
            )
        if self.pending_age(now) >= self.stall_after_s:
            return f"{self.name}: records have waited {self.pending_age(now):.0f} s uncommitted"
        if self.lag > 0 and now - self.last_commit_at >= self.stall_after_s:
            return (
                f"{self.name}: {self.lag} records wait in Kafka and nothing was committed for "
                f"{now - self.last_commit_at:.0f} s"
            )
        return None


STAGES: dict[str, StageHealth] = {}


def stage(name: str, stall_after_s: float) -> StageHealth:
    """The health record of a stage, registered for /readyz and the age metric."""
    health = STAGES.setdefault(name, StageHealth(name, stall_after_s))
    metrics.OLDEST_UNCOMMITTED_SECONDS.labels(name).set_function(
        lambda: health.pending_age(time.monotonic())
    )
    return health


def problems(now: float | None = None) -> list[str]:
    at = time.monotonic() if now is None else now
    return [p for p in (h.problem(at) for h in STAGES.values()) if p is not None]
