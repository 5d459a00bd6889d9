"""`python -m trackflow_app dlq` without a broker: a message naming it, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.stack import ROOT, free_port


@pytest.mark.parametrize("action", ["show", "replay"])
def test_no_broker_is_named_without_a_traceback(action: str) -> None:
    port = free_port()  # nothing listens there
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
        "TRACKFLOW_BROKER_URL": f"kafka://127.0.0.1:{port}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "trackflow_app", "dlq", action],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"TrackFlow: no Kafka broker at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr
