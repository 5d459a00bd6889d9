"""Map processed events to ClickHouse rows: JSONEachRow lines that ClickHouse parses. No I/O."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.records import ProcessedEvent

TIME_FIELDS = ("timestamp", "client_timestamp", "received_at")


def ms_to_text(ms: int) -> str:
    """Milliseconds as decimal seconds: text ClickHouse reads into DateTime64(3) exactly."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def to_json_row(event: ProcessedEvent) -> bytes:
    """One JSONEachRow line for the events table."""
    row: dict[str, Any] = dict(event)
    for name in TIME_FIELDS:
        row[name] = ms_to_text(event[name])  # type: ignore[literal-required]
    return orjson.dumps(row)
