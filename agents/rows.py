"""Map processed events to ClickHouse rows. No I/O.

``to_json_row`` is what the sink inserts (JSONEachRow, parsed by ClickHouse itself);
``to_row`` gives the same row as Python values in schemas.ddl.EVENT_COLUMNS order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from schemas.records import ProcessedEvent

TIME_FIELDS = ("timestamp", "client_timestamp", "received_at")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_datetime(ms: int) -> datetime:
    # Integer arithmetic: a float division could land a microsecond below the millisecond.
    return EPOCH + timedelta(milliseconds=ms)


def to_row(event: ProcessedEvent) -> list[Any]:
    return [
        UUID(event["event_id"]),
        event["event_type"],
        ms_to_datetime(event["timestamp"]),
        event["tenant_id"],
        event["session_id"],
        event["user_id"],
        event["page_url"],
        event["referrer"],
        event["device_type"],
        event["os"],
        event["browser"],
        event["ip_address"],
        event["country"],
        event["region"],
        event["city"],
        event["properties"],
        ms_to_datetime(event["received_at"]),
        ms_to_datetime(event["client_timestamp"]),
        event["seq"],
        event["user_agent"],
    ]


def to_rows(events: Iterable[ProcessedEvent]) -> list[list[Any]]:
    return [to_row(event) for event in events]


def ms_to_text(ms: int) -> str:
    """Milliseconds as decimal seconds: text ClickHouse reads into DateTime64(3) exactly."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def to_json_row(event: ProcessedEvent) -> bytes:
    """One JSONEachRow line for the events table."""
    row: dict[str, Any] = dict(event)
    for name in TIME_FIELDS:
        row[name] = ms_to_text(event[name])  # type: ignore[literal-required]
    return orjson.dumps(row)
