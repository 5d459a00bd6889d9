"""Run a script against a chDB store in a child process: chDB allows one store per process, and
the test process may already hold another."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from harness.stack import ROOT


def run_chdb_script(script: str, *args: str, timeout: float = 300) -> Any:
    """Run ``script`` with ``args`` and return the JSON document on its last line of output."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
