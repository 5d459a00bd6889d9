"""The worker's container image (deploy/container/Containerfile), built and run with podman.

Built on a Debian bookworm base made with debootstrap (deploy/container/debian-base.sh; kept
between runs) unless TRACKFLOW_CONTAINER_BASE names another base (e.g. the official
python:3.11-slim-bookworm where it can be pulled). The container runs against the suite's real
broker with its chDB store on a mounted folder; the seed's examples are posted, the container is
stopped with `podman stop` (SIGTERM) while they wait in the sink's buffer, and the stopped
store must hold every one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.stack import ROOT, Broker, free_port, start_broker
from tests.support import events as ev
from trackflow_app.shutdown import STOP_MARGIN_S

IMAGE = "localhost/trackflow:test"
DEBIAN_BASE = "localhost/trackflow-bookworm-base"
CONTAINERS_CONF = ROOT / "deploy/container/containers.conf"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
FLUSH_S = 10.0
SESSION = "session-123"  # the session of deploy/examples/post-seed-examples.sh


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    done = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def image() -> str:
    assert shutil.which("podman"), "podman is needed: apt-get install podman runc debootstrap"
    base = os.environ.get("TRACKFLOW_CONTAINER_BASE", DEBIAN_BASE)
    if base == DEBIAN_BASE:
        subprocess.run(
            [str(ROOT / "deploy/container/debian-base.sh"), DEBIAN_BASE],
            check=True,
            timeout=600,
            env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        )
    assert (ROOT / "web/tracker/dist/trackflow.min.js").exists(), "run `make tracker` first"
    secret = ["--secret", f"id=ca-bundle,src={HOST_CA_BUNDLE}"] if HOST_CA_BUNDLE.exists() else []
    started = time.monotonic()
    podman(
        "build",
        "--format",
        "docker",
        "--network",
        "host",
        *secret,
        "--build-arg",
        f"BASE_IMAGE={base}",
        "-f",
        str(ROOT / "deploy/container/Containerfile"),
        "-t",
        IMAGE,
        str(ROOT),
        timeout=1200,
    )
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    print(
        f"\nimage {IMAGE} on {base}: built in {time.monotonic() - started:.0f} s, "
        f"{size / 1e6:.0f} MB"
    )
    return IMAGE


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    yield from start_broker(tmp_path_factory.mktemp("container-broker"))


def test_container_stores_the_seed_examples_and_stops_cleanly(
    image: str, broker: Broker, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 10001, 10001)  # the image's non-root user owns its store
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    name = f"trackflow-test-{tag}"
    settings = {
        "TRACKFLOW_BROKER_URL": broker.url,
        "TRACKFLOW_WEB_PORT": str(port),
        "TRACKFLOW_API_KEYS": "dev-key",
        "TRACKFLOW_READ_KEYS": "dev-key:dev-read-secret",
        "TRACKFLOW_APP_ID": f"trackflow-{tag}",
        "TRACKFLOW_SINK_GROUP": f"trackflow-sink-{tag}",
        "TRACKFLOW_RAW_TOPIC": f"raw-{tag}",
        "TRACKFLOW_PROCESSED_TOPIC": f"processed-{tag}",
        "TRACKFLOW_DEAD_LETTER_TOPIC": f"dead-letter-{tag}",
        # Everything waits in the sink's buffer until the stop: the stop must store it.
        "TRACKFLOW_SINK_WINDOW_S": "600",
        "TRACKFLOW_SINK_BATCH_SIZE": "100000",
        "TRACKFLOW_SINK_SHUTDOWN_FLUSH_S": str(FLUSH_S),
    }
    env_args = [arg for key, value in settings.items() for arg in ("-e", f"{key}={value}")]
    started = time.monotonic()
    podman(
        "run", "-d", "--name", name, "--network", "host",
        "--stop-timeout", str(int(FLUSH_S + STOP_MARGIN_S + 10)),
        "-v", f"{data}:/data", *env_args, image,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        ready_after = None
        while time.monotonic() - started < 120:
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running", podman("logs", name, check=False).stderr[-3000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    ready_after = time.monotonic() - started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        assert ready_after is not None, podman("logs", name, check=False).stderr[-3000:]
        print(f"container start to /readyz 200: {ready_after:.1f} s")

        # The image's own health check, its user, and the tracker bundle it serves.
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        tracker = httpx.get(f"{base}/tracker.js", timeout=10)
        assert tracker.status_code == 200
        assert tracker.content == (ROOT / "web/tracker/dist/trackflow.min.js").read_bytes()

        posted = subprocess.run(
            [str(ROOT / "deploy/examples/post-seed-examples.sh"), base, "dev-key"],
            check=True, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert json.loads(posted.stdout) == {"status": "accepted", "accepted": 5}
        more_sid = f"s-{tag}"
        more = [e for _ in range(40) for e in ev.seed_examples("dev-key", more_sid)]
        assert httpx.post(f"{base}/v1/batch", json={"events": more}, timeout=30).status_code == 202

        expected = 5 + len(more)
        deadline = time.monotonic() + 30
        buffered = 0.0
        while time.monotonic() < deadline and buffered < expected:
            for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
                if line.startswith("trackflow_sink_buffered_rows "):
                    buffered = float(line.split()[1])
            time.sleep(0.2)
        assert buffered == expected, f"{buffered} rows buffered, expected {expected}"

        stop_started = time.monotonic()
        podman("stop", name, timeout=120)
        stop_took = time.monotonic() - stop_started
        print(f"podman stop (SIGTERM) took {stop_took:.1f} s")
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = podman("logs", name).stderr
        assert exit_code == "0", logs[-3000:]
        assert stop_took < FLUSH_S + STOP_MARGIN_S, logs[-3000:]
        assert "sink stopped" in logs and "rows not stored" not in logs, logs[-3000:]
    finally:
        podman("rm", "-f", name, check=False)

    # The stopped container's store, opened from the mounted folder.
    query = (
        "SELECT session_id, count() AS n, uniqExact(event_id) AS ids FROM events FINAL"
        f" WHERE session_id IN ('{SESSION}', '{more_sid}') GROUP BY session_id ORDER BY n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "trackflow_app", "query", query],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
            "TRACKFLOW_CLICKHOUSE_URL": f"chdb://{data / 'clickhouse'}",
        },
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {"session_id": SESSION, "n": 5, "ids": 5},
        {"session_id": more_sid, "n": len(more), "ids": len(more)},
    ]
