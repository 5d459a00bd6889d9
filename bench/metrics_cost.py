"""CPU cost of counting a validated batch's outcome in Prometheus: one labelled increment per
event against one per event type, in the same process, alternating.

    .venv/bin/python -m bench.metrics_cost
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from schemas.events import EVENT_TYPES
from trackflow_app import metrics

PER_EVENT = Counter("per_event_total", "", ["event_type"], registry=CollectorRegistry())


def per_event(processed: Sequence[Any], rejected: Sequence[Any]) -> None:
    for event in processed:
        PER_EVENT.labels(event["event_type"]).inc()


def per_type(processed: Sequence[Any], rejected: Sequence[Any]) -> None:
    metrics.record_outcome(processed, rejected)


def us_per_event(count: Callable[..., None], batch: list[Any], rounds: int = 2000) -> float:
    started = time.process_time()
    for _ in range(rounds):
        count(batch, [])
    return (time.process_time() - started) / rounds / len(batch) * 1e6


def main() -> None:
    batch = [{"event_type": random.choice(EVENT_TYPES)} for _ in range(100)]
    for _ in range(3):
        for count in (per_event, per_type):
            print(f"{count.__name__}: {us_per_event(count, batch):.3f} CPU-µs per event")


if __name__ == "__main__":
    main()
