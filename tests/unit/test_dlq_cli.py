"""`python -m trackflow_app dlq` without a broker: a message naming it, not a traceback."""

from __future__ import annotations

import pytest

from harness.stack import free_port
from tests.support.env import env_without_trackflow
from tests.support.processes import run_dlq


@pytest.mark.parametrize("action", ["show", "replay"])
def test_no_broker_is_named_without_a_traceback(action: str) -> None:
    port = free_port()  # nothing listens there
    env = env_without_trackflow(TRACKFLOW_BROKER_URL=f"kafka://127.0.0.1:{port}")
    done = run_dlq(env, action)
    assert done.returncode == 1
    assert f"TrackFlow: no Kafka broker at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr
