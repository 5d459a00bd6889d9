"""Memory figures of a process from /proc/<pid>/status (no imports beyond the standard library,
so that a benchmark measuring its own process does not grow by importing it)."""

from __future__ import annotations

from pathlib import Path

STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "VmHWM", "VmLck")


def memory_fields_mb(status: str) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile, VmHWM and VmLck from the text of a status file, in MB."""
    out: dict[str, float] = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in STATUS_FIELDS:
            out[name] = int(rest.split()[0]) / 1024
    return out


def status_mb(pid: int | str = "self") -> dict[str, float]:
    """The memory fields of a process (this one by default), in MB."""
    return memory_fields_mb(Path(f"/proc/{pid}/status").read_text())
