"""The test-only insert fault switch (TRACKFLOW_SINK_FAIL_FLAG): a store that refuses inserts
while a file exists, installed only when the setting names one, so the default insert path
checks no file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trackflow_app.fault_switch import FaultSwitchedStore, StoreRefused
from trackflow_app.settings import Settings
from trackflow_app.store import EventStore


class InsertingClient:
    """Stands in for clickhouse-connect's client: counts inserts."""

    def __init__(self) -> None:
        self.inserts = 0

    def raw_insert(self, *args: Any, **kwargs: Any) -> None:
        self.inserts += 1

    def command(self, sql: str, *args: Any, **kwargs: Any) -> None:
        assert sql.startswith("INSERT INTO events ")
        self.inserts += 1


def test_the_default_store_looks_at_no_file_on_insert(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_stat(self: Path, *args: Any, **kwargs: Any) -> bool:
        raise AssertionError(f"insert looked at {self}")

    store = EventStore("chdb://unused")
    client = InsertingClient()
    store._client = client
    monkeypatch.setattr(Path, "exists", no_stat)
    monkeypatch.setattr(Path, "stat", no_stat)
    store._insert_json([b"{}"], "token")
    store._insert_records([b"{}"], "token")
    assert client.inserts == 2
    store._executor.shutdown()


def test_the_switched_store_refuses_inserts_while_the_file_exists(tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    store = FaultSwitchedStore(flag, "chdb://unused", "events")
    client = InsertingClient()
    store._client = client
    store._insert_records([b"{}"])
    flag.touch()
    with pytest.raises(StoreRefused, match=r"inserts refused while .*fail exists"):
        store._insert_records([b"{}"])
    with pytest.raises(StoreRefused):
        store._insert_json([b"{}"])
    flag.unlink()
    store._insert_records([b"{}"])
    store._insert_json([b"{}"])
    assert client.inserts == 3
    store._executor.shutdown()


def test_the_worker_installs_the_switch_only_when_the_setting_names_a_file(
    tmp_path: Path,
) -> None:
    from trackflow_app.app import open_event_store

    plain = open_event_store(Settings(sink_fail_flag="", retention_days=30))
    assert type(plain) is EventStore
    assert plain.retention_days == 30
    switched = open_event_store(Settings(sink_fail_flag=str(tmp_path / "fail"), chdb_merge_nice=3))
    assert isinstance(switched, FaultSwitchedStore)
    assert switched.fail_flag == tmp_path / "fail"
    assert (switched.url, switched.table, switched.merge_nice) == (plain.url, plain.table, 3)
    for store in (plain, switched):
        store._executor.shutdown()
