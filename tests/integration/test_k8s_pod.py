"""A worker as deploy/k8s runs it: the ConfigMap's settings, a read-only root filesystem with
only its emptyDir writable, and a stop by SIGTERM within the pod's grace period.

The root filesystem is made read-only in a private mount namespace (`unshare`, which needs root
as in CI), except /tmp, the pod's /tmp emptyDir, which here also holds the worker's datadir (the
pod's other emptyDir) and, standing in for the ClickHouse server no machine here has, an
embedded store. Kafka is the suite's real broker.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.stack import ROOT, VENV_BIN, Broker, Worker
from tests.support import events as ev

K8S = ROOT / "deploy" / "k8s"
READ_ONLY_ROOT = 'mount --bind /tmp /tmp && mount -o remount,bind,ro / && exec "$@"'


def manifest(name: str, kind: str) -> dict[str, Any]:
    docs = yaml.safe_load_all((K8S / name).read_text(encoding="utf-8"))
    [found] = [doc for doc in docs if doc and doc["kind"] == kind]
    return found


def can_make_root_read_only() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -o remount,bind,ro /",
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not can_make_root_read_only(), reason="needs root and unshare for a read-only root"
)


def start_read_only(worker: Worker, timeout: float = 90.0) -> None:
    assert worker.workdir.is_relative_to("/tmp")
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh"]
    log = worker.log_path.open("ab")
    log_offset = worker.log_path.stat().st_size
    worker.proc = subprocess.Popen(
        [*unshare, str(VENV_BIN / "faust"), "-A", "trackflow_app", "worker", "-l", "info"],
        cwd=ROOT,
        env=worker.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited early; log:\n{worker.log_tail()}")
        fresh_log = worker.log_path.read_bytes()[log_offset:]
        if b"[^Worker]: Ready" in fresh_log and worker.ready():
            return
        time.sleep(0.3)
    raise RuntimeError(f"worker not ready in {timeout}s; log:\n{worker.log_tail()}")


def test_pod_settings_on_a_read_only_root(broker: Broker, tmp_path: Path) -> None:
    settings = dict(manifest("configmap.yaml", "ConfigMap")["data"])
    pod = manifest("deployment.yaml", "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    pre_stop = float(container["lifecycle"]["preStop"]["exec"]["command"][1])
    # Where this machine differs from a cluster: one broker, a free port, the worker's directory
    # as its emptyDir, and an embedded store instead of a ClickHouse server.
    settings.update(
        TRACKFLOW_BROKER_URL=broker.url,
        TRACKFLOW_REPLICATION_FACTOR="1",
        TRACKFLOW_WEB_PORT="",  # the Worker's own free port
        TRACKFLOW_DATADIR=str(tmp_path / "faust"),
        HOME=str(tmp_path),
    )
    del settings["TRACKFLOW_WEB_PORT"]
    worker = Worker(broker=broker, workdir=tmp_path, overrides=settings)
    start_read_only(worker)
    try:
        session = f"k8s-{uuid.uuid4().hex[:8]}"
        sent = ev.seed_examples(worker.api_key, session)
        response = worker.post({"events": sent})
        assert response.status_code == 202, response.text
        stored = worker.wait_for_session(session, len(sent), timeout=60)
        assert {e["event_id"] for e in stored} == {e["eventId"] for e in sent}
    finally:
        started = time.monotonic()
        code = worker.stop(timeout=pod["terminationGracePeriodSeconds"] - pre_stop)
        stopped_in = time.monotonic() - started
    assert code == 0, worker.log_tail()
    assert stopped_in < pod["terminationGracePeriodSeconds"] - pre_stop
    log = worker.log_path.read_text(errors="replace")
    assert "Read-only file system" not in log
    assert "Traceback" not in log, worker.log_tail()
