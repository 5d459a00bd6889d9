"""Read request parameters: a query string's (name, value) pairs in, a StatsRequest out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from web.read.request import (
    DAY_MS,
    DEFAULT_LIMIT,
    DIMENSIONS,
    FILTERS,
    FINGERPRINT,
    HOUR_MS,
    INTERVALS,
    MINUTE_MS,
    QueryError,
    StatsRequest,
    TimeRange,
    epoch_ms,
)

DEFAULT_RANGE_MS = 7 * DAY_MS
MAX_RANGE_DAYS = 400
MAX_RANGE_MS = MAX_RANGE_DAYS * DAY_MS
MAX_BUCKETS = 1500
# Accepted instants: epoch-second values sent as milliseconds would land in 1970 and are refused.
MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TIME_MS = 7_258_118_400_000  # 2200-01-01T00:00:00Z

MAX_LIMIT = 100
DEFAULT_HEALTH_MINUTES = 60
MAX_HEALTH_MINUTES = 1440
MAX_FILTER_LENGTH = 2048
MAX_PARAM_LENGTH = 4096

_COMMON = frozenset({"from", "to", "include_bots", *FILTERS})
ENDPOINT_PARAMS: dict[str, frozenset[str]] = {
    "traffic": _COMMON | {"interval"},
    "pages": _COMMON | {"limit"},
    "referrers": _COMMON | {"limit"},
    "breakdown": _COMMON | {"by", "limit"},
    "sessions": _COMMON,
    "errors": _COMMON | {"limit"},
    "error_detail": _COMMON | {"fingerprint", "limit"},
    "performance": _COMMON | {"limit"},
    "health": frozenset({"minutes"}),
}

_EPOCH_MS = re.compile(r"^-?\d{1,16}$")
# "2024-05-01T10:00:00+02:00" sent unencoded in a query string arrives with a space for "+".
_DECODED_PLUS = re.compile(r"^(.*T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")
_INTEGER = re.compile(r"^-?\d{1,9}$")
_FLAGS = {"1": True, "true": True, "0": False, "false": False}


def single_values(pairs: Iterable[tuple[str, str]], allowed: frozenset[str]) -> dict[str, str]:
    """Query-string pairs as a dict, refusing unknown names, repeats and oversized values."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise QueryError(
                f"unknown parameter {name!r}; this endpoint accepts: {', '.join(sorted(allowed))}"
            )
        if name in values:
            raise QueryError(f"parameter {name!r} is given more than once")
        if len(value) > MAX_PARAM_LENGTH:
            raise QueryError(f"parameter {name!r} is longer than {MAX_PARAM_LENGTH} characters")
        values[name] = value
    return values


def parse_instant(value: str, name: str) -> int:
    """An instant as epoch milliseconds, from epoch ms digits or ISO-8601 (UTC when no offset)."""
    text = value.strip()
    if _EPOCH_MS.match(text):
        ms = int(text)
    else:
        match = _DECODED_PLUS.match(text)
        if match:
            text = f"{match.group(1)}+{match.group(2)}"
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise QueryError(
                f"{name} must be epoch milliseconds or an ISO-8601 time "
                f"(e.g. 2024-05-01T00:00:00Z), got {value[:64]!r}"
            ) from None
        ms = epoch_ms(moment)
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise QueryError(
            f"{name} must lie between 2000-01-01 and 2200-01-01 "
            "(epoch values are milliseconds, not seconds)"
        )
    return ms


def choose_interval(span_ms: int) -> str:
    if span_ms <= 6 * HOUR_MS:
        return "minute"
    if span_ms <= 14 * DAY_MS:
        return "hour"
    return "day"


def parse_range(values: Mapping[str, str], now_ms: int) -> TimeRange:
    to_ms = parse_instant(values["to"], "to") if values.get("to") else now_ms
    if values.get("from"):
        from_ms = parse_instant(values["from"], "from")
    else:
        from_ms = to_ms - DEFAULT_RANGE_MS
    if from_ms >= to_ms:
        raise QueryError("from must be earlier than to")
    if to_ms - from_ms > MAX_RANGE_MS:
        raise QueryError(f"the time range is longer than {MAX_RANGE_DAYS} days")
    interval = values.get("interval") or "auto"
    if interval == "auto":
        interval = choose_interval(to_ms - from_ms)
    elif interval not in INTERVALS:
        raise QueryError("interval must be one of minute, hour, day, auto")
    time_range = TimeRange(from_ms, to_ms, interval)
    start = from_ms // time_range.step_ms * time_range.step_ms
    count = -(-(to_ms - start) // time_range.step_ms)
    if count > MAX_BUCKETS:
        raise QueryError(
            f"{count} {interval} buckets exceed the limit of {MAX_BUCKETS}; "
            "use a coarser interval or a shorter range"
        )
    return time_range


def parse_filters(values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Equality filters in a fixed order; an empty value means no filter."""
    filters: list[tuple[str, str]] = []
    for name in FILTERS:
        value = values.get(name, "")
        if not value:
            continue
        if len(value) > MAX_FILTER_LENGTH:
            raise QueryError(f"filter {name} is longer than {MAX_FILTER_LENGTH} characters")
        filters.append((name, value))
    return tuple(filters)


def parse_int(values: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = values.get(name, "")
    if not text:
        return default
    if not _INTEGER.match(text):
        raise QueryError(f"{name} must be an integer")
    number = int(text)
    if not low <= number <= high:
        raise QueryError(f"{name} must be between {low} and {high}")
    return number


def parse_flag(values: Mapping[str, str], name: str) -> bool:
    """A yes/no parameter: 1/true or 0/false (absent or empty: false)."""
    text = values.get(name, "").strip().lower()
    if not text:
        return False
    if text not in _FLAGS:
        raise QueryError(f"{name} must be 1, 0, true or false")
    return _FLAGS[text]


def parse_request(
    endpoint: str, tenant: str, pairs: Iterable[tuple[str, str]], now_ms: int
) -> StatsRequest:
    """Validate one read request for ``endpoint`` (a key of ENDPOINT_PARAMS)."""
    values = single_values(pairs, ENDPOINT_PARAMS[endpoint])
    if endpoint == "health":
        minutes = parse_int(values, "minutes", DEFAULT_HEALTH_MINUTES, 1, MAX_HEALTH_MINUTES)
        # Whole minutes ending with the current (partial) one.
        to_ms = (now_ms // MINUTE_MS + 1) * MINUTE_MS
        window = TimeRange(to_ms - minutes * MINUTE_MS, to_ms, "minute")
        return StatsRequest(tenant, window)
    dimension = None
    if endpoint == "breakdown":
        dimension = values.get("by", "")
        if dimension not in DIMENSIONS:
            raise QueryError(f"by must be one of {', '.join(DIMENSIONS)}")
    fingerprint = None
    if endpoint == "error_detail":
        fingerprint = values.get("fingerprint", "")
        if not FINGERPRINT.match(fingerprint):
            raise QueryError("fingerprint must be 16 lowercase hex characters")
    default_limit = 20 if endpoint == "error_detail" else DEFAULT_LIMIT
    return StatsRequest(
        tenant=tenant,
        range=parse_range(values, now_ms),
        filters=parse_filters(values),
        limit=parse_int(values, "limit", default_limit, 1, MAX_LIMIT),
        dimension=dimension,
        fingerprint=fingerprint,
        include_bots=parse_flag(values, "include_bots"),
    )
