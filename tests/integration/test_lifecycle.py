"""Start-up and stop of the worker and of `make run`, with real Kafka and a real chDB store.

* Start-up with every path set from outside to folders that do not exist yet.
* `make run` stopped by a signal to its whole process group (as `timeout`, supervisors and
  container stops do), once or twice: no process left, the broker's port free, nothing lost.
* A worker stopped while its broker goes away exits in bounded time; a restarted worker then
  stores every event.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.support import events as ev
from tests.support.stack import ROOT, VENV_BIN, Worker


def group_members(pgid: int) -> list[str]:
    """Command lines of the live processes in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(f"{entry.name}: {cmdline}")
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def answering(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: object, timeout: float, what: str) -> float:
    """Poll ``check()`` until true; seconds it took. Fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout} s")


def store_count(env: dict[str, str], session_id: str) -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trackflow_app",
            "query",
            f"SELECT count() AS n FROM events FINAL WHERE session_id = '{session_id}'",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    ).stdout
    import orjson

    return int(orjson.loads(out.splitlines()[0])["n"])


# -- start-up ------------------------------------------------------------------------------


def test_worker_starts_with_paths_to_folders_that_do_not_exist(
    worker_factory: type[Worker], tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh" / "var"
    worker = worker_factory(  # type: ignore[call-arg]
        TRACKFLOW_DATADIR=str(fresh / "faust"),
        TRACKFLOW_CLICKHOUSE_URL=f"chdb://{fresh / 'deeper' / 'clickhouse'}",
    ).start()
    sid = f"s-{uuid.uuid4().hex[:10]}"
    assert worker.post({"events": ev.seed_examples(worker.api_key, sid)}).status_code == 202
    assert len(worker.wait_for_session(sid, 5)) == 5
    assert worker.stop() == 0
    assert (fresh / "faust").is_dir()


def test_worker_names_the_setting_whose_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
        "TRACKFLOW_DATADIR": str(blocker / "faust"),
        "TRACKFLOW_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
    }
    done = subprocess.run(
        [str(VENV_BIN / "faust"), "-A", "trackflow_app", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert lines == [
        f"TrackFlow: cannot create the folder of TRACKFLOW_DATADIR={blocker / 'faust'}: "
        "Not a directory"
    ]
