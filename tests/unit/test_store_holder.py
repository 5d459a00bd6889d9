"""trackflow_app.store.store_holder: who holds an embedded store open, read from the lock and
the PID that ClickHouse keeps in ``<store>/status``."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trackflow_app.store import store_holder


@contextmanager
def locked(status: Path) -> Iterator[None]:
    """Hold ``status`` as a running engine does (flock on its own open file)."""
    descriptor = os.open(status, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield
    finally:
        os.close(descriptor)


def test_a_held_store_names_the_pid_in_its_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("PID: 4242\nStarted at: 2026-12-06 06:48:51\nRevision: 54515\n")
    with locked(status):
        assert store_holder(tmp_path) == "pid 4242"
    assert store_holder(tmp_path) is None  # the check itself leaves no lock behind
    assert store_holder(tmp_path) is None


def test_a_held_store_without_a_pid_names_another_process(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("")
    with locked(status):
        assert store_holder(tmp_path) == "another process"


def test_a_store_never_opened_is_free(tmp_path: Path) -> None:
    assert store_holder(tmp_path) is None
    assert store_holder(tmp_path / "missing") is None
