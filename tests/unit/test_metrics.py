"""Counting a validated batch's outcome."""

from __future__ import annotations

from typing import Any, cast

from trackflow_app import metrics


def value(counter: Any, label: str) -> float:
    return cast(float, counter.labels(label)._value.get())


def test_each_event_type_and_reason_is_counted_by_its_number() -> None:
    processed = [{"event_type": t} for t in ["click", "click", "page_view", "click"]]
    rejected = [{"reason": r} for r in ["unknown_event_type", "unknown_event_type"]]
    before = [
        value(metrics.EVENTS_PROCESSED, "click"),
        value(metrics.EVENTS_PROCESSED, "page_view"),
        value(metrics.EVENTS_DEAD_LETTERED, "unknown_event_type"),
    ]
    metrics.record_outcome(cast(Any, processed), cast(Any, rejected))
    after = [
        value(metrics.EVENTS_PROCESSED, "click"),
        value(metrics.EVENTS_PROCESSED, "page_view"),
        value(metrics.EVENTS_DEAD_LETTERED, "unknown_event_type"),
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 2]
