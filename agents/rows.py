"""Processed events as ClickHouse rows. No I/O.

The sink stores processed records as they are (the insert maps them to rows:
schemas.ddl.record_insert_sql). ``to_json_row`` is the same mapping in Python, for tools and
tests that insert rows themselves; ``record_problem`` says why a record the store refused is no
processed event at all."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.ddl import RECORD_TIME_COLUMNS as TIME_FIELDS
from schemas.records import ProcessedEvent


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


def record_problem(value: bytes) -> str | None:
    """Why a processed-topic record cannot be a row: not a JSON object, or a time that is not
    whole milliseconds. None for a record of the right shape."""
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    for name in TIME_FIELDS:
        if type(record.get(name)) is not int:
            return f"{name} is {record.get(name)!r}, not whole milliseconds"
    return None
