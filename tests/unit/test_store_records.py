"""EventStore._insert_records hands the processed records and the deduplication token to the
client in the form each kind of store reads (a stand-in client records the calls)."""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from schemas.ddl import EVENT_COLUMNS
from trackflow_app.store import EventStore

RECORDS = [b'{"event_id":"a"}', b'{"event_id":"b"}']


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.files: list[bytes] = []

    def command(self, sql: str, data: Any = None, settings: Any = None) -> None:
        self.calls.append((sql, data, settings))
        if " FROM file('" in sql:
            path = sql.split(" FROM file('", 1)[1].split("'", 1)[0]
            self.files.append(Path(path).read_bytes())


def store_with(url: str) -> tuple[EventStore, RecordingClient]:
    store = EventStore(url, "events")
    client = RecordingClient()
    store._client = client
    return store, client


def test_a_server_reads_the_records_from_the_request_body() -> None:
    store, client = store_with("http://clickhouse:8123")
    store._insert_records(RECORDS, "processed/0:0-1@1")
    [(sql, data, settings)] = client.calls
    assert sql.startswith(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT ")
    assert " FROM input('" in sql and sql.endswith(" FORMAT JSONEachRow")
    assert data == b"\n".join(RECORDS)
    assert settings == {"insert_deduplication_token": "processed/0:0-1@1"}
    store._executor.shutdown()


def test_the_embedded_engine_reads_them_from_a_file_removed_afterwards() -> None:
    store, client = store_with("chdb:///unused")
    store._insert_records(RECORDS, "processed/0:0-1@1")
    [(sql, data, settings)] = client.calls
    assert client.files == [b"\n".join(RECORDS)]
    assert data is None and settings is None
    assert sql.endswith(
        " SETTINGS insert_deduplication_token = 'processed/0:0-1@1',"
        " input_format_parallel_parsing = '0'"
    )
    path = sql.split(" FROM file('", 1)[1].split("'", 1)[0]
    assert not Path(path).exists()
    store._insert_records(RECORDS)
    assert "insert_deduplication_token" not in client.calls[1][0]
    store._executor.shutdown()


def test_a_file_that_could_not_be_written_is_removed_and_the_error_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FullDisk(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(os, "fdopen", lambda descriptor, mode: FullDisk())
    store, client = store_with("chdb:///unused")
    with pytest.raises(OSError, match="No space left"):
        store._insert_records(RECORDS, "token")
    assert list(tmp_path.iterdir()) == [] and client.calls == []
    store._executor.shutdown()
