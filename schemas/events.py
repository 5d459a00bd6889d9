"""Pydantic v2 shapes of what the tracker sends (the seed's BaseEvent and its four event types).

The event and its properties are TypedDicts validated through TypeAdapters: pydantic checks them
exactly as it checks models, and hands back plain dicts, which is all the validate stage needs
(building model instances and dumping them again cost about as much as the checks themselves).
Only shapes live here; sanitizing and enrichment live in ``agents.validate``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, NotRequired, get_args
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    with_config,
)
from typing_extensions import TypedDict

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


# Booleans are not numbers and numbers are not strings here; keys beyond the shape are left out
# of the result (free-form properties are read from the input by the validate stage).
STRICT = ConfigDict(strict=True, extra="ignore")


@with_config(STRICT)
class DeviceInfo(TypedDict):
    deviceType: StrictStr
    os: StrictStr
    browser: StrictStr


@with_config(STRICT)
class BaseEvent(TypedDict):
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
    seq: NotRequired[Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] | None]


@with_config(STRICT)
class PageViewProperties(TypedDict):
    title: StrictStr


@with_config(STRICT)
class ClickProperties(TypedDict):
    tag: StrictStr
    id: StrictStr | None


@with_config(STRICT)
class ErrorProperties(TypedDict):
    """The seed's first error shape: everything under ``properties``."""

    message: StrictStr
    source: StrictStr
    line: LineNumber
    col: LineNumber
    stack: StrictStr | None
    name: NotRequired[StrictStr | None]  # not in the seed's first shape, kept when a sender adds it


@with_config(STRICT)
class ErrorTopLevel(TypedDict):
    """The seed's second error shape: fields at the top level of the event."""

    name: StrictStr
    message: StrictStr
    stack: NotRequired[StrictStr | None]
    source: NotRequired[StrictStr | None]
    line: NotRequired[LineNumber | None]
    col: NotRequired[LineNumber | None]


@with_config(STRICT)
class PerformanceProperties(TypedDict):
    loadTime: Milliseconds
    domContentLoaded: Milliseconds


PROPERTY_MODELS: dict[str, type[Any]] = {
    "page_view": PageViewProperties,
    "click": ClickProperties,
    "error": ErrorProperties,
    "performance": PerformanceProperties,
}

# The validators, built once: ``validate_python`` returns the checked dict or raises
# pydantic.ValidationError.
BASE_EVENT: TypeAdapter[BaseEvent] = TypeAdapter(BaseEvent)
ERROR_TOP_LEVEL: TypeAdapter[ErrorTopLevel] = TypeAdapter(ErrorTopLevel)
PROPERTY_SHAPES: dict[str, TypeAdapter[Any]] = {
    event_type: TypeAdapter(shape) for event_type, shape in PROPERTY_MODELS.items()
}


def field_names(shape: type[Any]) -> tuple[str, ...]:
    """A TypedDict's keys, in declaration order."""
    return tuple(shape.__annotations__)


# ClickHouse's JSON column does not keep null-valued keys; readers put the typed keys back.
# An error's typed keys are the union of both shapes (the validate stage normalizes to it).
TYPED_PROPERTY_KEYS: dict[str, tuple[str, ...]] = {
    event_type: tuple(
        dict.fromkeys(
            [*field_names(ErrorTopLevel), *field_names(shape)]
            if event_type == "error"
            else field_names(shape)
        )
    )
    for event_type, shape in PROPERTY_MODELS.items()
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
