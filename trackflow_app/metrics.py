"""Prometheus metrics, served at GET /metrics."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from schemas.records import DeadLetter, ProcessedEvent

if TYPE_CHECKING:
    from trackflow_app.store import StoreActivity

BATCHES_ACCEPTED = Counter("trackflow_batches_accepted_total", "Requests answered 202")
RAW_RECORDS_WRITTEN = Counter(
    "trackflow_raw_records_written_total",
    "Raw Kafka records the edge wrote; batches accepted per record is the group commit's size",
)
EVENTS_ACCEPTED = Counter("trackflow_events_accepted_total", "Events in requests answered 202")
REQUESTS_REJECTED = Counter(
    "trackflow_requests_rejected_total", "Requests answered 4xx/503", ["status", "error"]
)
EVENTS_PROCESSED = Counter(
    "trackflow_events_processed_total", "Valid events fanned out", ["event_type"]
)
EVENTS_DEAD_LETTERED = Counter(
    "trackflow_events_dead_lettered_total", "Events sent to the dead-letter topic", ["reason"]
)
EVENTS_DROPPED_BY_CLIENT = Counter(
    "trackflow_client_dropped_events_total", "Events trackers report dropping from a full queue"
)
ROWS_INSERTED = Counter("trackflow_rows_inserted_total", "Rows the sink inserted into ClickHouse")
INSERT_FAILURES = Counter("trackflow_insert_failures_total", "Failed ClickHouse insert attempts")
SINK_BUFFERED_ROWS = Gauge("trackflow_sink_buffered_rows", "Rows waiting in the sink buffer")
OLDEST_UNCOMMITTED_SECONDS = Gauge(
    "trackflow_oldest_uncommitted_seconds",
    "Age of the oldest record a stage holds without having committed it",
    ["stage"],
)
ROWS_REJECTED_BY_STORE = Counter(
    "trackflow_rows_rejected_by_store_total", "Rows the store refused, sent to the dead letters"
)
STORE_MERGES = Gauge(
    "trackflow_store_merges", "Merges the store is running in TrackFlow's database"
)
STORE_MERGE_MEMORY_BYTES = Gauge(
    "trackflow_store_merge_memory_bytes", "Memory the store's running merges hold"
)
STORE_ACTIVE_PARTS = Gauge(
    "trackflow_store_active_parts", "Active data parts of TrackFlow's tables in the store"
)
INSERT_SECONDS = Histogram("trackflow_insert_seconds", "Duration of successful inserts")
RATE_LIMIT_GROUP_SIZE = Gauge(
    "trackflow_rate_limit_group_size", "Workers sharing each tenant's rate limit"
)
PRODUCE_SECONDS = Histogram(
    "trackflow_produce_seconds", "Time for Kafka to acknowledge a raw batch"
)
EDGE_PHASE_SECONDS = Histogram(
    "trackflow_edge_phase_seconds",
    "Time a POST spends in each step: body (reading it), decode (parse, check, authenticate), "
    "enqueue (handing the raw batch to the producer), ack (waiting for Kafka's acknowledgement)",
    ["phase"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
EDGE_PHASES = {p: EDGE_PHASE_SECONDS.labels(p) for p in ("body", "decode", "enqueue", "ack")}


def record_outcome(processed: Sequence[ProcessedEvent], rejected: Sequence[DeadLetter]) -> None:
    # One labelled increment per event type and reason, not per event: a label lookup costs
    # ~1 µs (python -m bench.metrics_cost).
    for event_type, count in Tally(event["event_type"] for event in processed).items():
        EVENTS_PROCESSED.labels(event_type).inc(count)
    for reason, count in Tally(letter["reason"] for letter in rejected).items():
        EVENTS_DEAD_LETTERED.labels(reason).inc(count)


def record_store_activity(activity: StoreActivity) -> None:
    STORE_MERGES.set(activity.merges)
    STORE_MERGE_MEMORY_BYTES.set(activity.merge_memory_bytes)
    STORE_ACTIVE_PARTS.set(activity.active_parts)
