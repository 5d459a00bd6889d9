"""Processes and ports as /proc and the kernel see them, for tests that start and stop them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def live_processes() -> Iterator[tuple[int, int, str]]:
    """(pid, process group, command line) of every process that is not a zombie."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            yield int(entry.name), int(fields[2]), cmdline


def group_members(pgid: int) -> list[str]:
    """Command lines of the live processes in process group ``pgid``."""
    return [f"{pid}: {cmdline}" for pid, group, cmdline in live_processes() if group == pgid]


def processes_naming(text: str) -> list[int]:
    """The pids of the live processes whose command line holds ``text``."""
    return [pid for pid, _, cmdline in live_processes() if text in cmdline]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def answering(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check()`` until true; seconds it took. Fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout} s")


def run_dlq(
    env: dict[str, str], *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -m trackflow_app dlq ARGS`` as an operator runs it, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "trackflow_app", "dlq", *args],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        check=check,
        capture_output=True,
        text=True,
        timeout=60,
    )
