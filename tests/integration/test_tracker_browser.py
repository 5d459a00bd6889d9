"""The browser tracker end to end: real headless Chromium, real worker, real Kafka and chDB.

The scenario and its assertions live in web/tracker/e2e/run.mjs (playwright-core driving
Debian's /usr/bin/chromium); this test starts the stack, runs it and demands a clean pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.stack import ROOT, Worker

TRACKER = ROOT / "web" / "tracker"


def test_tracker_events_reach_clickhouse_exactly_once(worker: Worker) -> None:
    if not (TRACKER / "dist" / "trackflow.min.js").exists():
        pytest.fail("tracker bundle missing: `make tracker` builds it (make test does)")
    if shutil.which("chromium") is None:
        pytest.fail("Debian chromium missing: `make browser` installs it (make test does)")
    env = {
        **os.environ,
        "TRACKFLOW_E2E_BASE_URL": worker.base_url,
        "TRACKFLOW_E2E_API_KEY": worker.api_key,
        "TRACKFLOW_E2E_READ_SECRET": worker.read_secret,
    }
    run = subprocess.run(
        ["node", "e2e/run.mjs"], cwd=TRACKER, env=env, capture_output=True, text=True, timeout=240
    )
    print(run.stdout[-6000:])
    assert run.returncode == 0, f"e2e failed:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert "FAIL" not in run.stdout
    assert run.stdout.count("PASS") >= 20
