"""Map processed events to ClickHouse rows: JSONEachRow lines that ClickHouse parses. No I/O."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.records import ProcessedEvent

TIME_FIELDS = ("timestamp", "client_timestamp", "received_at")


def ms_to_text(ms: int) -> str:
    """Milliseconds as signed decimal seconds, e.g. ``-5.500`` for -5500 ms.

    Exact for every storable time: ``ms / 1000`` is within half a unit in the last place of
    the decimal value (|ms| < 2**53), far closer than the 0.0005 that rounding to three
    places could move it."""
    if type(ms) is not int:
        raise TypeError(f"a time in milliseconds must be an integer, not {ms!r}")
    return f"{ms / 1000:.3f}"


def ms_to_json_number(ms: int) -> orjson.Fragment:
    """Milliseconds as a JSON *number* of seconds, which ClickHouse reads into DateTime64(3)
    exactly. A quoted value would be parsed as date text, and short ones ("5.000", a client
    clock near 1970) are rejected, so the time columns are always written unquoted."""
    return orjson.Fragment(ms_to_text(ms))


def _encode_row(row: dict[str, Any]) -> bytes:
    """The line of a decoded event that this function may change: its times become seconds."""
    for name in TIME_FIELDS:
        row[name] = ms_to_json_number(row[name])
    return orjson.dumps(row)


def to_json_row(event: ProcessedEvent) -> bytes:
    """One JSONEachRow line for the events table."""
    return _encode_row(dict(event))


def record_to_json_row(value: bytes) -> bytes:
    """The JSONEachRow line of one processed-topic record (a ProcessedEvent as JSON): the same
    line as ``to_json_row`` of the decoded event, without copying it."""
    row = orjson.loads(value)
    if not isinstance(row, dict):
        raise TypeError(f"a processed record must be a JSON object, not {type(row).__name__}")
    return _encode_row(row)
