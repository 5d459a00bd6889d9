"""trackflow_app.health: when a stage counts as stalled."""

from __future__ import annotations

from trackflow_app.health import StageHealth


def test_progressing_stage_is_healthy() -> None:
    health = StageHealth("sink", stall_after_s=10, last_commit_at=0.0)
    health.holding(100.0)
    assert health.problem(105.0) is None
    health.committed(106.0)
    assert health.pending_age(200.0) == 0.0
    assert health.problem(200.0) is None  # idle without lag is fine


def test_records_held_too_long() -> None:
    health = StageHealth("sink", stall_after_s=10, last_commit_at=0.0)
    health.holding(100.0)
    health.holding(104.0)  # the oldest record decides
    assert health.pending_age(112.0) == 12.0
    problem = health.problem(112.0)
    assert problem is not None and problem.startswith("sink:")


def test_failing_writes_name_the_error() -> None:
    health = StageHealth("validate", stall_after_s=5, last_commit_at=0.0)
    health.failed(10.0, OSError("disk full"))
    health.failed(12.0, OSError("disk still full"))
    assert health.problem(14.0) is None
    problem = health.problem(15.0)
    assert problem is not None and "disk still full" in problem
    health.committed(16.0)
    assert health.problem(100.0) is None


def test_lag_without_commits() -> None:
    health = StageHealth("sink", stall_after_s=5, last_commit_at=0.0)
    health.lag = 10
    problem = health.problem(6.0)
    assert problem is not None and "10 records" in problem
    health.lag = 0
    assert health.problem(6.0) is None
