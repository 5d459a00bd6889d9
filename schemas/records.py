"""Shapes of the records on TrackFlow's Kafka topics (JSON, encoded with orjson).

raw topic        one RawBatch per accepted HTTP request, written by the edge
processed topic  one ProcessedEvent per valid event, keyed by session id
dead-letter      one DeadLetter per rejected event, with a machine-readable reason
"""

from __future__ import annotations

from typing import Any, TypedDict


class RawBatch(TypedDict):
    v: int
    api_key: str
    received_at: int  # ms since epoch, server clock
    ip: str | None
    user_agent: str
    sent_at: float | None  # tracker's clock at send time (ms), when it sent one
    dropped: int | None  # events the tracker dropped from a full queue before this batch
    events: list[Any]  # the events exactly as the client sent them


class ProcessedEvent(TypedDict):
    event_id: str
    event_type: str
    timestamp: int  # ms, client timestamp corrected for clock skew
    client_timestamp: int  # ms, as the client sent it
    tenant_id: str
    session_id: str
    user_id: str | None
    page_url: str
    referrer: str | None
    device_type: str
    os: str
    browser: str
    ip_address: str | None
    country: str | None
    region: str | None
    city: str | None
    properties: dict[str, Any]
    received_at: int  # ms
    seq: int | None
    user_agent: str
    is_bot: bool  # the User-Agent names a crawler, headless browser or HTTP library


class DeadLetter(TypedDict):
    reason: str  # machine-readable, e.g. "missing_field"
    field: str | None  # dotted path of the offending field, when there is one
    detail: str  # human-readable explanation
    tenant_id: str | None
    received_at: int
    ip: str | None
    event: Any  # the original event, untouched
