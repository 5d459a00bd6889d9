"""`deploy/kafka.sh` (what `make run` starts) with an installed Kafka named by KAFKA_HOME.

The README promises that KAFKA_HOME replaces the copy Maven fetches: the broker must start from
that install's libs/ without touching the Maven cache, and a KAFKA_HOME that is not an install
must be refused with a message that says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from harness.stack import ROOT, port_pair
from tests.support.processes import alive, answering

SCRIPT = ROOT / "deploy/kafka.sh"


def maven_libs() -> Path:
    """The jars `deploy/kafka.sh fetch` keeps, fetched first if this run has none yet."""
    cache = Path(os.environ.get("TRACKFLOW_KAFKA_CACHE", ROOT / ".cache/kafka"))
    if not (cache / "libs/.complete").exists():
        subprocess.run([str(SCRIPT), "fetch"], check=True, timeout=900)
    return cache / "libs"


def kafka_sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=120
    )


def env_for(tmp_path: Path, kafka_home: Path, port: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
        "KAFKA_HOME": str(kafka_home),
        # A cache that does not exist: nothing may be fetched into it or read from it.
        "TRACKFLOW_KAFKA_CACHE": str(tmp_path / "maven-cache"),
        "TRACKFLOW_KAFKA_DIR": str(tmp_path / "kafka"),
        "TRACKFLOW_KAFKA_PORT": str(port),
    }


def test_the_broker_runs_from_kafka_home_without_the_maven_copy(tmp_path: Path) -> None:
    kafka_home = tmp_path / "kafka-install"
    (kafka_home / "libs").mkdir(parents=True)
    for jar in maven_libs().glob("*.jar"):
        (kafka_home / "libs" / jar.name).symlink_to(jar)
    port = port_pair()
    env = env_for(tmp_path, kafka_home, port)

    started = kafka_sh("start", env)
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "kafka" / "kafka.pid").read_text())
    try:
        assert answering(port)
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert f"{kafka_home}/libs/*" in command_line
        assert not (tmp_path / "maven-cache").exists()
        assert (tmp_path / "kafka" / "logs" / "kafkaServer-gc.log").stat().st_size > 0
        assert kafka_sh("status", env).returncode == 0
        assert kafka_sh("stop", env).returncode == 0
        assert not alive(pid) and not answering(port)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_kafka_home_without_libs_is_refused(tmp_path: Path) -> None:
    not_an_install = tmp_path / "empty"
    not_an_install.mkdir()
    env = env_for(tmp_path, not_an_install, port_pair())

    refused = kafka_sh("start", env)

    assert refused.returncode == 1
    assert f"KAFKA_HOME={not_an_install} has no libs/ folder" in refused.stderr
    assert not (tmp_path / "kafka" / "kafka.pid").exists()
