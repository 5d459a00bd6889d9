"""A validated read request (tenant, time range, filters, endpoint options), and the 400 answer
for one the read API refuses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
INTERVALS: dict[str, int] = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}

DEFAULT_LIMIT = 10
FILTERS: tuple[str, ...] = ("page_url", "device_type", "os", "browser", "country")
DIMENSIONS: tuple[str, ...] = ("device_type", "os", "browser", "country")
FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class QueryError(ValueError):
    """A request the read API refuses: answered 400 with ``{"error", "message"}``."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


@dataclass(frozen=True)
class TimeRange:
    from_ms: int
    to_ms: int  # exclusive
    interval: str  # minute | hour | day

    @property
    def step_ms(self) -> int:
        return INTERVALS[self.interval]

    def buckets(self) -> list[int]:
        """Bucket starts (epoch ms, UTC-aligned) covering [from, to)."""
        step = self.step_ms
        return list(range(self.from_ms // step * step, self.to_ms, step))

    def describe(self) -> dict[str, Any]:
        return {"from": self.from_ms, "to": self.to_ms, "interval": self.interval}


@dataclass(frozen=True)
class StatsRequest:
    """A validated read request: tenant, time range, filters and endpoint options."""

    tenant: str
    range: TimeRange
    filters: tuple[tuple[str, str], ...] = ()
    limit: int = DEFAULT_LIMIT
    dimension: str | None = None
    fingerprint: str | None = None
    include_bots: bool = False  # rows the validate stage flagged is_bot count too

    def describe(self) -> dict[str, Any]:
        return {
            **self.range.describe(),
            "filters": dict(self.filters),
            "include_bots": self.include_bots,
        }


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a datetime without a zone is UTC (as chDB returns them)."""
    utc = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (utc - _EPOCH) // timedelta(milliseconds=1)
