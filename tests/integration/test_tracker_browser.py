"""The browser tracker end to end: real headless Chromium, real worker, real Kafka and chDB.

The scenarios and their assertions live in web/tracker/e2e/*.mjs (playwright-core driving Debian's
/usr/bin/chromium); each test here runs one of them against a worker and demands a clean pass.
faults.mjs and capture.mjs put e2e/proxy.mjs (a recording, failing HTTP proxy that also sees
sendBeacon requests) between the tracker and the worker. All three share one worker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from harness.stack import ROOT, Broker, Worker

TRACKER = ROOT / "web" / "tracker"


@pytest.fixture(scope="module")
def tracker_worker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    if not (TRACKER / "dist" / "trackflow.min.js").exists():
        pytest.fail("tracker bundle missing: `make tracker` builds it (make test does)")
    if shutil.which("chromium") is None:
        pytest.fail("Debian chromium missing: `make browser` installs it (make test does)")
    worker = Worker(broker=broker, workdir=tmp_path_factory.mktemp("tracker-worker")).start()
    yield worker
    if worker.proc is not None and worker.proc.poll() is None:
        worker.stop()


def run_e2e(worker: Worker, script: str, min_passes: int) -> str:
    env = {
        **os.environ,
        "TRACKFLOW_E2E_BASE_URL": worker.base_url,
        "TRACKFLOW_E2E_API_KEY": worker.api_key,
        "TRACKFLOW_E2E_READ_SECRET": worker.read_secret,
    }
    env.pop("TRACKFLOW_E2E_MOCK", None)
    env.pop("TRACKFLOW_E2E_BUNDLE", None)
    run = subprocess.run(
        ["node", script], cwd=TRACKER, env=env, capture_output=True, text=True, timeout=240
    )
    print(run.stdout[-6000:])
    assert run.returncode == 0, f"{script} failed:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert "FAIL" not in run.stdout
    assert run.stdout.count("PASS") >= min_passes
    return run.stdout


def test_tracker_events_reach_clickhouse_exactly_once(tracker_worker: Worker) -> None:
    run_e2e(tracker_worker, "e2e/run.mjs", 20)


def test_tracker_keeps_events_through_failing_and_hanging_endpoints(
    tracker_worker: Worker,
) -> None:
    """503, 429 and connection resets across a reload lose nothing; a hanging request times out."""
    run_e2e(tracker_worker, "e2e/faults.mjs", 18)


def test_tracker_captures_nested_clicks_spa_titles_and_odd_errors(tracker_worker: Worker) -> None:
    """Nested clicks, SPA titles, muted errors, null-prototype reasons, the old storage layout."""
    run_e2e(tracker_worker, "e2e/capture.mjs", 10)
