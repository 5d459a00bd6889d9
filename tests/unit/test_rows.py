"""agents.rows: processed events to ClickHouse rows in schemas.ddl.EVENT_COLUMNS order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.rows import ms_to_text, record_problem, to_json_row
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


def row(event: ProcessedEvent | dict[str, Any]) -> dict[str, Any]:
    return dict(orjson.loads(to_json_row(event)))  # type: ignore[arg-type]


def test_json_row_has_every_column_and_the_values() -> None:
    event = processed()[1]
    named = row(event)
    assert set(named) == set(EVENT_COLUMNS)
    assert named["event_id"] == event["event_id"]
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


def test_json_row_times_are_exact_unquoted_decimal_seconds() -> None:
    assert ms_to_text(1625539200123) == "1625539200.123"
    assert ms_to_text(1625539200005) == "1625539200.005"
    assert ms_to_text(1000) == "1.000"
    assert ms_to_text(0) == "0.000"
    assert ms_to_text(-5500) == "-5.500"
    assert ms_to_text(-1) == "-0.001"
    event = processed()[0]
    line = to_json_row(event)
    for key in TIME_KEYS:
        # Unquoted: ClickHouse reads a quoted short value ("5.000") as date text and fails.
        assert f'"{key}":{ms_to_text(event[key])}'.encode() in line  # type: ignore[literal-required]
    assert b'"timestamp":1625539200.123' in line
    assert b'"received_at":1625539260.456' in line
    named = row(event)
    assert {k: v for k, v in named.items() if k not in TIME_KEYS} == {
        k: v for k, v in event.items() if k not in TIME_KEYS
    }


@given(st.integers(min_value=-2_208_988_800_000, max_value=10_413_791_999_999))
def test_ms_to_text_is_exact(ms: int) -> None:
    assert Decimal(ms_to_text(ms)) * 1000 == ms


def test_ms_to_text_is_exact_at_the_ends_of_the_storable_range() -> None:
    assert ms_to_text(-2_208_988_800_000) == "-2208988800.000"
    assert ms_to_text(-2_208_988_799_999) == "-2208988799.999"
    assert ms_to_text(10_413_791_999_999) == "10413791999.999"


@pytest.mark.parametrize("value", [1.5, 1000.0, True, "1000", None])
def test_a_time_that_is_not_an_integer_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        ms_to_text(value)


def test_a_processed_record_has_no_problem() -> None:
    for event in processed():
        assert record_problem(orjson.dumps(event)) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"null", "a JSON NoneType, not an object"),
        (b'{"timestamp": 1, "client_timestamp": 2}', "received_at is None, not whole"),
        (b'{"timestamp": 1.5, "client_timestamp": 2, "received_at": 3}', "timestamp is 1.5"),
        (b'{"timestamp": "1", "client_timestamp": 2, "received_at": 3}', "timestamp is '1'"),
        (b'{"timestamp": true, "client_timestamp": 2, "received_at": 3}', "timestamp is True"),
    ],
)
def test_a_record_that_is_no_processed_event_says_why(value: bytes, problem: str) -> None:
    found = record_problem(value)
    assert found is not None and found.startswith(problem)


def test_json_row_of_minimal_event() -> None:
    event: dict[str, Any] = dict(processed()[0])
    event.update(user_id=None, referrer=None, ip_address=None, seq=None)
    named = row(event)
    assert (named["user_id"], named["referrer"], named["ip_address"], named["seq"]) == (
        None,
        None,
        None,
        None,
    )
    assert named["properties"]["title"] == "Example Page"
