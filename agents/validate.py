"""Validate + enrich stage core: one raw batch in, processed events and dead letters out. No I/O.

Every event of a batch ends either as a ProcessedEvent or as a DeadLetter with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from agents.bots import is_bot
from agents.sanitize import (
    JsonBudget,
    PropertyBudgetExceeded,
    clean_json,
    clean_multiline,
    clean_optional,
    clean_text,
)
from schemas.events import (
    BASE_EVENT,
    ERROR_TOP_LEVEL,
    EVENT_TYPES,
    PROPERTY_SHAPES,
    BaseEvent,
)
from schemas.records import DeadLetter, DeadLetterReason, ProcessedEvent, RawBatch, dead_letter

DAY_MS = 86_400_000
# The range of the store's DateTime64(3) columns: 1900-01-01 to 2299-12-31 23:59:59.999 UTC.
STORABLE_MIN_MS = -2_208_988_800_000
STORABLE_MAX_MS = 10_413_791_999_999
# The second error shape's optional fields, which a sender may put in properties instead.
ERROR_LOCATION = ("source", "line", "col", "stack")


@dataclass(frozen=True)
class GeoInfo:
    country: str | None
    region: str | None
    city: str | None


GeoLookup = Callable[[str], GeoInfo | None]


@dataclass(frozen=True)
class ValidationPolicy:
    tenant_keys: frozenset[str]
    max_string_length: int = 2048
    max_stack_length: int = 16384
    max_properties: int = 64
    max_property_keys: int = 256
    max_property_chars: int = 32_768
    retention_days: int = 365
    max_future_skew_s: int = 86_400
    skew_tolerance_ms: int = 60_000


@dataclass
class Outcome:
    processed: list[ProcessedEvent] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    # Validated events that could not be written to the processed topic (dead-lettered instead).
    unencodable: list[DeadLetter] = field(default_factory=list)


class Rejection(Exception):
    def __init__(self, reason: DeadLetterReason, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


def clock_offset_ms(received_at: int, sent_at: float | None, tolerance_ms: int) -> int:
    """How far the client's clock is behind the server's, in ms (0 when it looks right).

    ``received_at - sent_at`` is clock skew plus network transit; offsets within the tolerance
    are read as transit (or negligible skew) and not applied, so a well-set clock is trusted.
    """
    if sent_at is None:
        return 0
    offset = received_at - int(sent_at)
    return offset if abs(offset) > tolerance_ms else 0


def _data_path(data: Any, loc: tuple[int | str, ...], missing: bool) -> str:
    """The dotted path of the offending field in the input.

    pydantic's ``loc`` also names union members ("int", "float", ...); only the parts that are
    keys of the input (plus, for a missing field, the key that is absent) make the path.
    """
    parts: list[str] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            parts.append(str(part))
            node = node[part]
        else:
            if missing:
                parts.append(str(part))
            break
    return ".".join(parts)


def _rejection_from(error: ValidationError, data: Any, prefix: str = "") -> Rejection:
    first = error.errors(include_url=False)[0]
    path = prefix + _data_path(data, first["loc"], first["type"] == "missing")
    if first["type"] == "missing":
        return Rejection("missing_field", path, f"required field {path!r} is missing")
    if path == "eventType" and first["type"] == "literal_error":
        return Rejection(
            "unknown_event_type", path, f"eventType must be one of {', '.join(EVENT_TYPES)}"
        )
    return Rejection("invalid_field", path, f"{path}: {first['msg']}")


def _validate(shape: TypeAdapter[Any], data: Any, prefix: str = "") -> Any:
    try:
        return shape.validate_python(data)
    except ValidationError as exc:
        raise _rejection_from(exc, data, prefix) from None


def _error_properties(
    event: dict[str, Any], props: dict[str, Any], policy: ValidationPolicy
) -> dict[str, Any]:
    """Both seed error shapes, normalized to one property set.

    The second shape is recognized by its top-level ``message`` (or a top-level ``name`` without
    a message in properties); anything else is read as the first shape, so its missing fields
    are reported under ``properties.``. Mixes keep what they carry: the second shape's
    location fields, absent or null at the top level, are read (type-checked) from properties,
    and the first shape takes a top-level ``name`` when its properties have none.
    """
    if "message" in event or ("name" in event and "message" not in props):
        values: dict[str, Any] = _validate(ERROR_TOP_LEVEL, event)
        inner = {
            key: props[key]
            for key in ERROR_LOCATION
            if values.get(key) is None and props.get(key) is not None
        }
        if inner:
            values = _validate(ERROR_TOP_LEVEL, {**values, **inner}, "properties.")
    else:
        values = _validate(PROPERTY_SHAPES["error"], props, "properties.")
        if values.get("name") is None and event.get("name") is not None:
            named = {"name": event["name"], "message": values["message"]}
            values["name"] = _validate(ERROR_TOP_LEVEL, named)["name"]
    stack = values.get("stack")
    normalized = {
        "name": clean_optional(values.get("name"), policy.max_string_length),
        "message": clean_text(values["message"], policy.max_string_length),
        "source": clean_optional(values.get("source"), policy.max_string_length),
        "line": values.get("line"),
        "col": values.get("col"),
        "stack": None if stack is None else clean_multiline(stack, policy.max_stack_length),
    }
    return {**_extra_properties(props, normalized, policy), **normalized}


def _extra_properties(
    props: dict[str, Any], known: dict[str, Any], policy: ValidationPolicy
) -> dict[str, Any]:
    """Properties beyond the typed ones are kept, sanitized, within the property budget."""
    if len(props) > policy.max_properties:
        raise Rejection(
            "too_many_properties",
            "properties",
            f"properties has {len(props)} keys; the limit is {policy.max_properties}",
        )
    extra = {k: v for k, v in props.items() if k not in known}
    if not extra:
        return {}
    budget = JsonBudget(policy.max_property_keys, policy.max_property_chars)
    try:
        cleaned = clean_json(extra, policy.max_string_length, budget=budget)
    except PropertyBudgetExceeded as exceeded:
        raise Rejection(exceeded.reason, "properties", exceeded.detail) from None
    return cleaned if isinstance(cleaned, dict) else {}


def _typed_properties(event: dict[str, Any], event_type: str, policy: ValidationPolicy) -> Any:
    if "properties" not in event:
        raise Rejection("missing_field", "properties", "required field 'properties' is missing")
    props = event["properties"]
    if not isinstance(props, dict):
        raise Rejection("invalid_field", "properties", "properties must be an object")
    if event_type == "error":
        return _error_properties(event, props, policy)
    typed: dict[str, Any] = _validate(PROPERTY_SHAPES[event_type], props, "properties.")
    for key, value in typed.items():
        if isinstance(value, str):
            typed[key] = clean_text(value, policy.max_string_length)
    return {**_extra_properties(props, typed, policy), **typed}


def _client_timestamp(value: float) -> int:
    """The client's clock as sent, within what the store's DateTime64 column holds."""
    if not STORABLE_MIN_MS <= value <= STORABLE_MAX_MS:
        raise Rejection(
            "client_timestamp_out_of_range",
            "timestamp",
            f"timestamp {value} ms is outside the storable range {STORABLE_MIN_MS}.."
            f"{STORABLE_MAX_MS} (years 1900-2299)",
        )
    return int(value)


@dataclass(frozen=True)
class BatchContext:
    """What every event of one batch shares, worked out once per batch."""

    received_at: int
    clock_offset_ms: int
    oldest_ms: int  # the accepted window for skew-corrected timestamps
    newest_ms: int
    ip: str | None
    geo: GeoInfo | None
    user_agent: str
    is_bot: bool


def batch_context(
    batch: RawBatch, policy: ValidationPolicy, geo_lookup: GeoLookup | None = None
) -> BatchContext:
    received_at = batch["received_at"]
    ip = batch["ip"]
    return BatchContext(
        received_at=received_at,
        clock_offset_ms=clock_offset_ms(received_at, batch["sent_at"], policy.skew_tolerance_ms),
        oldest_ms=max(received_at - policy.retention_days * DAY_MS, STORABLE_MIN_MS),
        newest_ms=min(received_at + policy.max_future_skew_s * 1000, STORABLE_MAX_MS),
        ip=ip,
        geo=geo_lookup(ip) if geo_lookup is not None and ip else None,
        user_agent=clean_text(batch["user_agent"], 512),
        is_bot=is_bot(batch["user_agent"]),
    )


def _check_time_window(timestamp_ms: int, context: BatchContext, policy: ValidationPolicy) -> None:
    if not context.oldest_ms <= timestamp_ms <= context.newest_ms:
        raise Rejection(
            "timestamp_out_of_range",
            "timestamp",
            f"timestamp {timestamp_ms} (after clock-skew correction) is outside the accepted "
            f"window: {policy.retention_days} days of retention back, "
            f"{policy.max_future_skew_s} s ahead",
        )


def validate_event(
    event: Any,
    batch: RawBatch,
    policy: ValidationPolicy,
    geo_lookup: GeoLookup | None = None,
    context: BatchContext | None = None,
) -> ProcessedEvent:
    """Validate, sanitize and enrich one event, or raise Rejection. ``context`` is the batch's
    (``batch_context``), passed in when the caller validates many events of one batch."""
    if not isinstance(event, dict):
        raise Rejection("not_an_object", None, "each event must be a JSON object")
    base: BaseEvent = _validate(BASE_EVENT, event)
    tenant = base["tenantId"]
    if tenant not in policy.tenant_keys:
        raise Rejection("unknown_tenant", "tenantId", "tenantId is not a known API key")
    if tenant != batch["api_key"]:
        raise Rejection(
            "tenant_mismatch", "tenantId", "tenantId differs from the API key of the request"
        )
    properties = _typed_properties(event, base["eventType"], policy)
    if context is None:
        context = batch_context(batch, policy, geo_lookup)
    client_ts = _client_timestamp(base["timestamp"])
    corrected = client_ts + context.clock_offset_ms
    _check_time_window(corrected, context, policy)
    geo = context.geo
    limit = policy.max_string_length
    device = base["deviceInfo"]
    return {
        "event_id": base["eventId"],
        "event_type": base["eventType"],
        "timestamp": corrected,
        "client_timestamp": client_ts,
        "tenant_id": tenant,
        "session_id": clean_text(base["sessionId"], limit),
        "user_id": clean_optional(base["userId"], limit),
        "page_url": clean_text(base["pageUrl"], limit),
        "referrer": clean_optional(base["referrer"], limit),
        "device_type": clean_text(device["deviceType"], 64),
        "os": clean_text(device["os"], 64),
        "browser": clean_text(device["browser"], 64),
        "ip_address": context.ip,
        "country": geo.country if geo else None,
        "region": geo.region if geo else None,
        "city": geo.city if geo else None,
        "properties": properties,
        "received_at": context.received_at,
        "seq": base.get("seq"),
        "user_agent": context.user_agent,
        "is_bot": context.is_bot,
    }


def rejected_event(event: Any, batch: RawBatch, rejection: Rejection) -> DeadLetter:
    tenant = event.get("tenantId") if isinstance(event, dict) else None
    return dead_letter(
        rejection.reason,
        rejection.detail,
        event,
        field=rejection.field,
        tenant_id=tenant if isinstance(tenant, str) else None,
        api_key=batch["api_key"],
        received_at=batch["received_at"],
        ip=batch["ip"],
        user_agent=batch["user_agent"],
    )


def process_batch(
    batch: RawBatch, policy: ValidationPolicy, geo_lookup: GeoLookup | None = None
) -> Outcome:
    """Split one raw batch into processed events and dead letters, in event order."""
    outcome = Outcome()
    context = batch_context(batch, policy, geo_lookup)
    for event in batch["events"]:
        try:
            outcome.processed.append(validate_event(event, batch, policy, geo_lookup, context))
        except Rejection as rejection:
            outcome.rejected.append(rejected_event(event, batch, rejection))
    return outcome


def malformed_raw_record(detail: str, value: Any) -> DeadLetter:
    if isinstance(value, bytes):
        text = value[:65_536].decode("utf-8", "replace")
    else:
        text = orjson.dumps(value, default=repr)[:65_536].decode("utf-8", "replace")
    return dead_letter("malformed_raw_record", f"raw record cannot be read: {detail}", text)


def process_raw_record(
    value: bytes, policy: ValidationPolicy, geo_lookup: GeoLookup | None = None
) -> Outcome:
    """One raw record: a raw batch, or a JSON array of them (the edge's group commit). A part
    that cannot be read becomes a dead letter of its own; the batches beside it go on."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Outcome(rejected=[malformed_raw_record(repr(exc), value)])
    batches = document if isinstance(document, list) else [document]
    if not batches:
        return Outcome(rejected=[malformed_raw_record("an empty group", value)])
    outcome = Outcome()
    for batch in batches:
        part = _batch_outcome(batch, policy, geo_lookup)
        outcome.processed.extend(part.processed)
        outcome.rejected.extend(part.rejected)
    return outcome


def _batch_outcome(batch: Any, policy: ValidationPolicy, geo_lookup: GeoLookup | None) -> Outcome:
    try:
        return process_batch(batch, policy, geo_lookup)
    # A batch the edge did not write: missing keys, or values of the wrong kind (a `sent_at`
    # that int() cannot read raises ValueError).
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return Outcome(rejected=[malformed_raw_record(repr(exc), batch)])


def rounds_by_bytes(sizes: Sequence[int], max_bytes: int) -> list[range]:
    """Consecutive index ranges over records of these sizes, each holding at most ``max_bytes``
    (a record larger than that alone): what the stage decodes and publishes at once."""
    rounds: list[range] = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > max_bytes:
            rounds.append(range(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        rounds.append(range(start, len(sizes)))
    return rounds
