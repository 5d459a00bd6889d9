"""Shapes of the records on TrackFlow's Kafka topics (JSON, encoded with orjson).

raw topic        one RawBatch per accepted HTTP request, written by the edge
processed topic  one ProcessedEvent per valid event, keyed by session id
dead-letter      one DeadLetter per rejected event, with a machine-readable reason
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, get_args

# Every reason a record can be dead-lettered for: the validate stage's rejections, the
# containment of what it could not encode, and what the sink could not map or store.
DeadLetterReason = Literal[
    "not_an_object",
    "missing_field",
    "invalid_field",
    "unknown_event_type",
    "unknown_tenant",
    "tenant_mismatch",
    "too_many_properties",
    "too_many_property_keys",
    "properties_too_large",
    "integer_out_of_range",
    "client_timestamp_out_of_range",
    "timestamp_out_of_range",
    "malformed_raw_record",
    "unencodable_event",
    "unmappable_processed_record",
    "store_rejected_row",
]
DEAD_LETTER_REASONS: tuple[str, ...] = get_args(DeadLetterReason)


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
    reason: DeadLetterReason  # machine-readable
    field: str | None  # dotted path of the offending field, when there is one
    detail: str  # human-readable explanation
    tenant_id: str | None  # the tenant the event claims (its tenantId)
    api_key: str | None  # the key the request was authenticated with, when known
    received_at: int
    ip: str | None
    user_agent: str | None  # the request's User-Agent, when known: a replay flags bots by it
    event: Any  # the original event, untouched


def raw_batch(
    events: list[Any],
    *,
    api_key: str,
    received_at: int,
    ip: str | None,
    user_agent: str,
    sent_at: float | None = None,
    dropped: int | None = None,
) -> RawBatch:
    """The one way a raw-topic record is built (the edge, and the dead-letter replay)."""
    return {
        "v": 1,
        "api_key": api_key,
        "received_at": received_at,
        "ip": ip,
        "user_agent": user_agent[:1024],
        "sent_at": sent_at,
        "dropped": dropped,
        "events": events,
    }


def dead_letter(
    reason: DeadLetterReason,
    detail: str,
    event: Any,
    *,
    field: str | None = None,
    tenant_id: str | None = None,
    api_key: str | None = None,
    received_at: int = 0,
    ip: str | None = None,
    user_agent: str | None = None,
) -> DeadLetter:
    """The one way every stage builds a dead-letter record."""
    return {
        "reason": reason,
        "field": field,
        "detail": detail,
        "tenant_id": tenant_id,
        "api_key": api_key,
        "received_at": received_at,
        "ip": ip,
        "user_agent": user_agent,
        "event": event,
    }
