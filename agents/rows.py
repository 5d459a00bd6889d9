"""Map processed events to ClickHouse rows: JSONEachRow lines that ClickHouse parses. No I/O."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.records import ProcessedEvent

TIME_FIELDS = ("timestamp", "client_timestamp", "received_at")


def ms_to_text(ms: int) -> str:
    """Milliseconds as signed decimal seconds, e.g. ``-5.500`` for -5500 ms."""
    sign = "-" if ms < 0 else ""
    magnitude = abs(ms)
    return f"{sign}{magnitude // 1000}.{magnitude % 1000:03d}"


def ms_to_json_number(ms: int) -> orjson.Fragment:
    """Milliseconds as a JSON *number* of seconds, which ClickHouse reads into DateTime64(3)
    exactly. A quoted value would be parsed as date text, and short ones ("5.000", a client
    clock near 1970) are rejected, so the time columns are always written unquoted."""
    return orjson.Fragment(ms_to_text(ms))


def to_json_row(event: ProcessedEvent) -> bytes:
    """One JSONEachRow line for the events table."""
    row: dict[str, Any] = dict(event)
    for name in TIME_FIELDS:
        row[name] = ms_to_json_number(event[name])  # type: ignore[literal-required]
    return orjson.dumps(row)
