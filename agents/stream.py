"""Validate + enrich agent: raw topic -> processed topic (one record per event) / dead-letter topic.

A thin Faust shell around ``agents.validate.process_batch``. Raw records are acked only after
Kafka acknowledged every record fanned out from them, so a crash re-reads rather than loses;
the sink's ReplacingMergeTree absorbs the duplicates that re-reading can produce.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import backoff
import faust
from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT

from agents.fanout import records_by_partition, send_partition
from agents.geo import open_geo_lookup
from agents.validate import Outcome, ValidationPolicy, process_raw_record, rounds_by_bytes
from trackflow_app import health, metrics
from trackflow_app.app import app, dead_letter_topic, processed_topic, raw_topic, settings
from trackflow_app.kafka import aiokafka_producer

log = logging.getLogger(__name__)

policy = ValidationPolicy(
    tenant_keys=settings.tenant_keys,
    max_string_length=settings.max_string_length,
    max_stack_length=settings.max_stack_length,
    max_properties=settings.max_properties,
    max_property_keys=settings.max_property_keys,
    max_property_chars=settings.max_property_chars,
    retention_days=settings.retention_days,
    max_future_skew_s=settings.max_future_skew_s,
    skew_tolerance_ms=settings.skew_tolerance_ms,
)
geo_lookup = open_geo_lookup(settings.geoip_database)


def outcome_of(value: bytes) -> Outcome:
    return process_raw_record(value, policy, geo_lookup)


def _partition_of(topic: str, key: bytes) -> int:
    return app.producer.key_partition(topic, key).partition


stage_health = health.stage("validate", settings.ready_stall_s)


def _stopping(_exc: Exception) -> bool:
    return bool(app.should_stop)


def _publish_failed(details: Any) -> None:
    error = details.get("exception")
    if isinstance(error, BaseException):
        stage_health.failed(time.monotonic(), error)


# Only Kafka's own trouble is retried here: every record was encoded (or dead-lettered) before
# the first attempt. A stopping worker gives up; its raw records stay unacked and are re-read.
@backoff.on_exception(
    backoff.expo,
    Exception,
    max_value=10,
    jitter=backoff.full_jitter,
    giveup=_stopping,
    on_backoff=_publish_failed,
    logger=log,
)
async def publish(outcomes: list[Outcome]) -> None:
    """Send every record and wait until Kafka acknowledged all of them (retried until it does,
    or until the worker stops)."""
    # Faust's producer wraps an aiokafka producer; its batch API is what this stage needs.
    kafka: AIOKafkaProducer = aiokafka_producer(app.producer)
    processed, dead_letters = processed_topic.get_topic_name(), dead_letter_topic.get_topic_name()
    for topic in (processed, dead_letters):
        await kafka.partitions_for(topic)  # the partitioner needs the topic's metadata
    grouped = records_by_partition(outcomes, processed, dead_letters, _partition_of)
    deliveries: list[Awaitable[Any]] = []
    for (topic, partition), records in grouped.items():
        deliveries.extend(await send_partition(kafka, topic, partition, records))
    await asyncio.gather(*deliveries)


async def _batches(stream: StreamT[bytes]) -> AsyncIterator[list[EventT[bytes]]]:
    # noack_take exists on the concrete Stream, not on the StreamT protocol; it yields the
    # buffered events themselves (typed as values upstream), which are acked by hand.
    async for events in cast("faust.Stream[bytes]", stream).noack_take(
        settings.validate_batch_max, within=settings.validate_batch_within_s
    ):
        yield cast(list[EventT[bytes]], list(events))


async def validate_round(stream: StreamT[bytes], events: list[EventT[bytes]]) -> None:
    outcomes = []
    for event in events:
        outcomes.append(outcome_of(event.value))
        # The edge shares this event loop: let waiting requests in between raw batches.
        await asyncio.sleep(0)
    await publish(outcomes)
    for outcome in outcomes:
        metrics.record_outcome(outcome.processed, [*outcome.rejected, *outcome.unencodable])
    for event in events:
        await stream.ack(event)


@app.agent(raw_topic, concurrency=1)
async def validate_and_enrich(stream: StreamT[bytes]) -> None:
    async for events in _batches(stream):
        stage_health.holding(time.monotonic())
        # Under overload the edge packs many POSTs into each raw record: bounding a round by
        # bytes keeps the decoded events of one round, not of up to VALIDATE_BATCH_MAX records.
        sizes = [len(event.value or b"") for event in events]
        for part in rounds_by_bytes(sizes, settings.validate_round_max_bytes):
            await validate_round(stream, events[part.start : part.stop])
        stage_health.committed(time.monotonic())
