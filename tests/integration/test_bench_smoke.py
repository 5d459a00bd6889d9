"""The ingestion benchmark's short variant runs end to end (a smoke test: no thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.stack import ROOT


def test_short_benchmark_runs_and_loses_nothing(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *(sys.executable, "-m", "bench.run", "--short", "--out", str(tmp_path)),
            *("--worker-env", "TRACKFLOW_RAW_FETCH_MAX_WAIT_MS=15"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "results.md").stat().st_size > 0
    assert (tmp_path / "results.png").stat().st_size > 0
    results = json.loads((tmp_path / "results.json").read_text())
    run_totals = results["trackflow"]
    totals = run_totals["store_totals"]
    accepted = run_totals["final"]["accepted"]
    assert accepted > 0
    # Zero loss and zero visible duplicates, even in the smoke run.
    assert totals["n"] == totals["uniq"] == totals["n_final"] == accepted, totals
    assert run_totals["worker_exit_code"] == 0
    # --worker-env reaches the workers (and the results say so).
    assert run_totals["worker_env"]["TRACKFLOW_RAW_FETCH_MAX_WAIT_MS"] == "15"
