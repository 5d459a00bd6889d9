"""agents.rows: processed events to ClickHouse rows in schemas.ddl.EVENT_COLUMNS order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.rows import EPOCH, ms_to_datetime, to_row, to_rows
from agents.validate import GeoInfo, process_batch
from schemas.ddl import EVENT_COLUMNS
from schemas.records import ProcessedEvent
from tests.support import events as ev
from tests.unit.factories import SESSION, TENANT, make_batch, policy

RECEIVED = 1625539260456
TIME_KEYS = {"timestamp", "client_timestamp", "received_at"}


def processed(ts: int = 1625539200123) -> list[ProcessedEvent]:
    events = ev.seed_examples(TENANT, SESSION)
    for offset, event in enumerate(events):
        event["timestamp"] = ts + offset
    events[1]["seq"] = 9
    outcome = process_batch(
        make_batch(events, received_at=RECEIVED, sent_at=RECEIVED - 100, ip="203.0.113.3"),
        policy(),
        lambda ip: GeoInfo(country="NZ", region="Wellington", city=None),
    )
    assert outcome.rejected == []
    return outcome.processed


def test_processed_event_keys_match_the_columns() -> None:
    assert set(ProcessedEvent.__annotations__) == set(EVENT_COLUMNS)
    assert len(EVENT_COLUMNS) == len(set(EVENT_COLUMNS))


def test_row_follows_column_order() -> None:
    event = processed()[1]
    row = to_row(event)
    assert len(row) == len(EVENT_COLUMNS)
    named = dict(zip(EVENT_COLUMNS, row, strict=True))
    assert named["event_id"] == UUID(event["event_id"])
    assert isinstance(named["event_id"], UUID)
    assert named["event_type"] == "click"
    assert named["tenant_id"] == TENANT
    assert named["session_id"] == SESSION
    assert named["user_id"] == "user-456"
    assert named["page_url"] == "https://example.com"
    assert named["referrer"] == "https://google.com"
    assert (named["device_type"], named["os"], named["browser"]) == ("desktop", "Windows", "Chrome")
    assert named["ip_address"] == "203.0.113.3"
    assert (named["country"], named["region"], named["city"]) == ("NZ", "Wellington", None)
    assert named["properties"] == {"tag": "BUTTON", "id": "submit-button"}
    assert named["seq"] == 9
    assert named["user_agent"] == event["user_agent"]


def test_row_times_are_millisecond_exact_utc() -> None:
    named = dict(zip(EVENT_COLUMNS, to_row(processed()[0]), strict=True))
    assert named["timestamp"] == datetime(2021, 7, 6, 2, 40, 0, 123000, tzinfo=UTC)
    assert named["client_timestamp"] == named["timestamp"]
    assert named["received_at"] == datetime(2021, 7, 6, 2, 41, 0, 456000, tzinfo=UTC)
    for column in ("timestamp", "client_timestamp", "received_at"):
        assert named[column].utcoffset() == timedelta(0)


def test_properties_dict_is_kept_as_a_dict() -> None:
    event = processed()[2]
    named = dict(zip(EVENT_COLUMNS, to_row(event), strict=True))
    assert named["properties"] is event["properties"]
    assert named["properties"]["line"] == 42


def test_to_rows_maps_each_event() -> None:
    events = processed()
    rows = to_rows(events)
    assert [row[0] for row in rows] == [UUID(e["event_id"]) for e in events]
    assert to_rows([]) == []


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (1625539200123, datetime(2021, 7, 6, 2, 40, 0, 123000, tzinfo=UTC)),
        (1625539200999, datetime(2021, 7, 6, 2, 40, 0, 999000, tzinfo=UTC)),
        (4102444800001, datetime(2100, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)),
    ],
)
def test_ms_to_datetime(ms: int, expected: datetime) -> None:
    assert ms_to_datetime(ms) == expected


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_ms_to_datetime_is_exact(ms: int) -> None:
    value = ms_to_datetime(ms)
    assert value.microsecond == (ms % 1000) * 1000
    assert (value - EPOCH) // timedelta(milliseconds=1) == ms
    assert value.tzinfo is UTC


def test_row_of_minimal_event() -> None:
    event: dict[str, Any] = dict(processed()[0])
    event.update(user_id=None, referrer=None, ip_address=None, seq=None)
    named = dict(zip(EVENT_COLUMNS, to_row(event), strict=True))  # type: ignore[arg-type]
    assert (named["user_id"], named["referrer"], named["ip_address"], named["seq"]) == (
        None,
        None,
        None,
        None,
    )


def test_json_row_times_are_exact_decimal_seconds() -> None:
    from agents.rows import ms_to_text, to_json_row

    assert ms_to_text(1625539200123) == "1625539200.123"
    assert ms_to_text(1625539200005) == "1625539200.005"
    assert ms_to_text(1000) == "1.000"
    event = processed()[0]
    line = orjson.loads(to_json_row(event))
    assert line["timestamp"] == ms_to_text(event["timestamp"])
    assert line["client_timestamp"] == ms_to_text(event["client_timestamp"])
    assert line["received_at"] == ms_to_text(event["received_at"])
    assert {k: v for k, v in line.items() if k not in TIME_KEYS} == {
        k: v for k, v in event.items() if k not in TIME_KEYS
    }
    assert set(line) == set(EVENT_COLUMNS)
