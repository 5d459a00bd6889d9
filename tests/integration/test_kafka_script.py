"""`deploy/kafka.sh` refusals leave nothing behind: a `cluster start` that cannot start every
node leaves none of its own running, and `run` over a started broker leaves it (and its log) be."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from harness.stack import ROOT, port_block, port_pair
from tests.support.env import env_without_trackflow
from tests.support.processes import alive, processes_naming

SCRIPT = ROOT / "deploy/kafka.sh"


def test_a_taken_port_of_a_later_node_leaves_no_node_running(tmp_path: Path) -> None:
    first = port_block(6)
    folder = tmp_path / "cluster"
    env = env_without_trackflow(TRACKFLOW_KAFKA_PORT=str(first), TRACKFLOW_KAFKA_DIR=str(folder))
    with socket.socket() as squatter:  # another program on node 2's client port
        squatter.bind(("127.0.0.1", first + 2))
        squatter.listen()
        try:
            refused = subprocess.run(
                [str(SCRIPT), "cluster", "start", "3"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert refused.returncode == 1
            assert f"127.0.0.1:{first + 2} is taken by another process" in refused.stderr
            assert processes_naming(str(folder)) == []  # a node's server.properties is in it
        finally:
            subprocess.run([str(SCRIPT), "cluster", "stop"], env=env, timeout=120)


def test_run_over_a_started_broker_is_refused_and_keeps_its_log(tmp_path: Path) -> None:
    folder = tmp_path / "kafka"
    env = env_without_trackflow(
        TRACKFLOW_KAFKA_PORT=str(port_pair()), TRACKFLOW_KAFKA_DIR=str(folder)
    )
    started = subprocess.run(
        [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    pid = int((folder / "kafka.pid").read_text())
    try:
        log = (folder / "logs" / "server.log").read_text()
        refused = subprocess.run(
            [str(SCRIPT), "run"], env=env, capture_output=True, text=True, timeout=120
        )
        assert refused.returncode == 1
        assert f"already running (pid {pid})" in refused.stderr
        assert (folder / "logs" / "server.log").read_text().startswith(log)
        assert alive(pid)
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, timeout=120)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
