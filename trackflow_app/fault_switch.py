"""Test-only: a store that refuses inserts on cue (TRACKFLOW_SINK_FAIL_FLAG).

The fault suites make ClickHouse "fail" for a while by creating a file; the worker uses this
store only when the setting names one, so the default store's inserts check nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trackflow_app.store import EventStore


class StoreRefused(Exception):
    """The store refused an insert (the test-only fault switch is on)."""


class FaultSwitchedStore(EventStore):
    """An EventStore whose inserts raise StoreRefused while the file ``fail_flag`` exists."""

    def __init__(self, fail_flag: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail_flag = fail_flag

    def _refuse_while_flagged(self) -> None:
        if self.fail_flag.exists():
            raise StoreRefused(f"inserts refused while {self.fail_flag} exists")

    def _insert_json(self, lines: Sequence[bytes], token: str = "") -> None:
        self._refuse_while_flagged()
        super()._insert_json(lines, token)

    def _insert_records(self, records: Sequence[bytes], token: str = "") -> None:
        self._refuse_while_flagged()
        super()._insert_records(records, token)
