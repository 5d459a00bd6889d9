"""Query rows shaped into the read API's JSON answers (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from web.read.request import StatsRequest
from web.read.sql import PERCENTILES

Rows = Sequence[Mapping[str, Any]]
Shaper = Callable[[StatsRequest, Rows], dict[str, Any]]

PERCENTILE_NAMES: tuple[str, ...] = tuple(f"p{round(level * 100)}" for level in PERCENTILES)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _percentiles(values: Sequence[Any] | None) -> dict[str, float | None]:
    values = list(values or [])
    if len(values) != len(PERCENTILE_NAMES):
        return dict.fromkeys(PERCENTILE_NAMES)
    return {name: _number(value) for name, value in zip(PERCENTILE_NAMES, values, strict=True)}


def shape_traffic(request: StatsRequest, rows: Rows) -> dict[str, Any]:
    keys = ("page_views", "sessions", "users")
    row = rows[0] if rows else {}
    totals = {key: int(row.get(key) or 0) for key in keys}
    found = {
        int(point[0]): dict(zip(keys, (int(v) for v in point[1:]), strict=True))
        for point in row.get("series") or []
    }
    zero = dict.fromkeys(keys, 0)
    series = [{"t": bucket, **found.get(bucket, zero)} for bucket in request.range.buckets()]
    return {"range": request.describe(), "totals": totals, "series": series}


def listed(key: str) -> Shaper:
    """A shaper that answers the rows as they are, under ``key``."""

    def shape(request: StatsRequest, rows: Rows) -> dict[str, Any]:
        return {"range": request.describe(), key: [dict(row) for row in rows]}

    return shape


def shape_breakdown(request: StatsRequest, rows: Rows) -> dict[str, Any]:
    return {"range": request.describe(), "by": request.dimension, "rows": [dict(r) for r in rows]}


def shape_sessions(request: StatsRequest, rows: Rows) -> dict[str, Any]:
    row = rows[0] if rows else {}
    sessions = int(row.get("sessions") or 0)
    page_views = int(row.get("page_views") or 0)
    bounces = int(row.get("bounces") or 0)
    total_duration = int(row.get("total_duration_ms") or 0)
    return {
        "range": request.describe(),
        "sessions": sessions,
        "page_views": page_views,
        "bounces": bounces,
        "pages_per_session": page_views / sessions if sessions else 0.0,
        "bounce_rate": bounces / sessions if sessions else 0.0,
        "avg_duration_ms": total_duration / sessions if sessions else 0.0,
    }


_GROUP_KEYS = (
    "fingerprint",
    "name",
    "message",
    "source",
    "line",
    "count",
    "sessions",
    "first_seen",
    "last_seen",
    "sample_stack",
)


def error_group(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: row["occurrences" if key == "count" else key] for key in _GROUP_KEYS}


def shape_errors(request: StatsRequest, rows: Rows) -> dict[str, Any]:
    first = rows[0] if rows else {}
    return {
        "range": request.describe(),
        "total_errors": int(first.get("total_errors") or 0),
        "total_groups": int(first.get("total_groups") or 0),
        "groups": [error_group(row) for row in rows],
    }


_OCCURRENCE_KEYS = (
    "event_id",
    "timestamp",
    "session_id",
    "user_id",
    "page_url",
    "device_type",
    "os",
    "browser",
    "country",
    "col",
    "stack",
)


def shape_error_detail(request: StatsRequest, rows: Rows) -> dict[str, Any]:
    return {
        "range": request.describe(),
        "group": error_group(rows[0]) if rows else None,
        "occurrences": [{key: row[key] for key in _OCCURRENCE_KEYS} for row in rows],
    }


def _perf_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "samples": int(row["samples"]),
        "load_time": _percentiles(row["load_time"]),
        "dom_content_loaded": _percentiles(row["dom_content_loaded"]),
    }


def shape_performance(request: StatsRequest, rows: Rows) -> dict[str, Any]:
    overall: dict[str, Any] = {
        "samples": 0,
        "load_time": _percentiles(None),
        "dom_content_loaded": _percentiles(None),
    }
    pages: list[dict[str, Any]] = []
    for row in rows:
        if row["is_total"]:
            overall = _perf_row(row)
        else:
            pages.append({"page_url": row["page_url"], **_perf_row(row)})
    return {"range": request.describe(), "overall": overall, "pages": pages[: request.limit]}


def shape_health(request: StatsRequest, rows: Rows, worker: Mapping[str, Any]) -> dict[str, Any]:
    by_minute = {int(row["minute"]): row for row in rows}
    series = [
        {"t": minute, "events": int(by_minute[minute]["events"]) if minute in by_minute else 0}
        for minute in request.range.buckets()
    ]
    events = sum(point["events"] for point in series)
    stored_rows = sum(int(row["stored_rows"]) for row in rows)
    lag_sum = sum(int(row["lag_sum_ms"]) for row in rows)
    minutes = len(series)
    return {
        "window": request.range.describe(),
        "tenant": {
            "events": events,
            "events_per_minute": series,
            "avg_events_per_minute": events / minutes if minutes else 0.0,
            "last_inserted_at": max((int(r["last_inserted_at"]) for r in rows), default=None),
            "lag_ms": {
                "avg": lag_sum / stored_rows if stored_rows else None,
                "max": max((int(r["lag_max_ms"]) for r in rows), default=None),
            },
        },
        "worker": dict(worker),
    }
