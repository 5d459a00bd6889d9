"""Validated means storable: everything the validate core accepts is inserted by the real engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.stack import ROOT


def test_every_accepted_event_inserts_into_chdb(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.storable_check", str(tmp_path / "store"), "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failure"] is None, result["failure"]
    assert result["stored"] == result["accepted"]
    # The insert's SELECT maps every record as agents.rows.to_json_row does.
    assert result["differing_rows"] == 0, result
    # Not vacuous: many events were accepted, including clocks near 1970 (once a stall).
    assert result["accepted"] >= result["generated"] // 10, result
    assert result["near_1970"] > 0, result
