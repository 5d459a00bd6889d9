"""Pydantic v2 models of what the tracker sends (the seed's BaseEvent and its four event types).

Only shapes live here; sanitizing and enrichment live in ``agents.validate``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

EventType = Literal["page_view", "click", "error", "performance"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

MAX_DURATION_MS = 86_400_000.0
MAX_LINE = 2**31 - 1


CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _finite(value: int | float) -> int | float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _uuid_text(value: str) -> str:
    if CANONICAL_UUID.fullmatch(value):  # the tracker's own form: nothing to normalize
        return value
    try:
        parsed = UUID(value)
    except ValueError as exc:
        raise ValueError("must be a UUID") from exc
    return str(parsed)


# Integers stay integers (a load time of 2450 is stored as 2450, not 2450.0).
FiniteNumber = Annotated[int | float, AfterValidator(_finite)]
UuidText = Annotated[StrictStr, AfterValidator(_uuid_text)]
Milliseconds = Annotated[FiniteNumber, Field(ge=0, le=MAX_DURATION_MS)]
LineNumber = Annotated[StrictInt, Field(ge=0, le=MAX_LINE)]


class _Strict(BaseModel):
    # Booleans are not numbers and numbers are not strings here.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class DeviceInfo(_Strict):
    deviceType: StrictStr
    os: StrictStr
    browser: StrictStr


class BaseEvent(_Strict):
    """Fields every event carries. ``properties`` is checked per type afterwards."""

    eventId: UuidText
    eventType: EventType
    timestamp: Annotated[FiniteNumber, Field(gt=0)]
    tenantId: StrictStr
    sessionId: Annotated[StrictStr, Field(min_length=1)]
    userId: StrictStr | None
    pageUrl: StrictStr
    referrer: StrictStr | None
    deviceInfo: DeviceInfo
    # Optional extras sent by the TrackFlow tracker; events in the seed's exact shape lack them.
    seq: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] | None = None


class PageViewProperties(_Strict):
    title: StrictStr


class ClickProperties(_Strict):
    tag: StrictStr
    id: StrictStr | None


class ErrorProperties(_Strict):
    """The seed's first error shape: everything under ``properties``."""

    message: StrictStr
    source: StrictStr
    line: LineNumber
    col: LineNumber
    stack: StrictStr | None
    name: StrictStr | None = None  # not in the seed's first shape, kept when a sender adds it


class ErrorTopLevel(_Strict):
    """The seed's second error shape: fields at the top level of the event."""

    name: StrictStr
    message: StrictStr
    stack: StrictStr | None = None
    source: StrictStr | None = None
    line: LineNumber | None = None
    col: LineNumber | None = None


class PerformanceProperties(_Strict):
    loadTime: Milliseconds
    domContentLoaded: Milliseconds


PROPERTY_MODELS: dict[str, type[_Strict]] = {
    "page_view": PageViewProperties,
    "click": ClickProperties,
    "error": ErrorProperties,
    "performance": PerformanceProperties,
}


# ClickHouse's JSON column does not keep null-valued keys; readers put the typed keys back.
# An error's typed keys are the union of both shapes (the validate stage normalizes to it).
TYPED_PROPERTY_KEYS: dict[str, tuple[str, ...]] = {
    event_type: tuple(
        dict.fromkeys(
            [*ErrorTopLevel.model_fields, *model.model_fields]
            if event_type == "error"
            else model.model_fields
        )
    )
    for event_type, model in PROPERTY_MODELS.items()
}


def with_typed_keys(event_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Stored properties with every typed key of the event type present (null when absent)."""
    missing = {k: None for k in TYPED_PROPERTY_KEYS.get(event_type, ()) if k not in properties}
    return {**properties, **missing} if missing else properties


class Envelope(BaseModel):
    """The batch envelope: ``{"events": [...]}``, plus the tracker's optional extras."""

    model_config = ConfigDict(strict=True, extra="ignore")

    events: list[Any]
    sentAt: Annotated[FiniteNumber, Field(gt=0)] | None = None
    dropped: Annotated[StrictInt, Field(ge=0)] | None = None
