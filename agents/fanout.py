"""Fan-out to Kafka in whole batches: the records of one validated window grouped by
destination partition (pure), and one partition's records handed to the producer as batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from agents.validate import Outcome

Record = tuple[bytes, bytes]  # key, value


def records_by_partition(
    outcomes: list[Outcome],
    processed: str,
    dead_letters: str,
    partition_of: Callable[[str, bytes], int],
) -> dict[tuple[str, int], list[Record]]:
    """Every record to publish, grouped by destination (topic, partition), in order.

    Processed events are keyed by session (one partition keeps a session in order); dead
    letters by tenant. ``partition_of`` is the producer's own key partitioner.
    """
    grouped: dict[tuple[str, int], list[Record]] = defaultdict(list)
    partitions: dict[tuple[str, bytes], int] = {}

    def add(topic: str, key: bytes, value: bytes) -> None:
        partition = partitions.get((topic, key))
        if partition is None:
            partition = partitions[(topic, key)] = partition_of(topic, key)
        grouped[(topic, partition)].append((key, value))

    for outcome in outcomes:
        for event in outcome.processed:
            add(processed, event["session_id"].encode(), orjson.dumps(event))
        for letter in outcome.rejected:
            add(dead_letters, (letter["tenant_id"] or "").encode(), orjson.dumps(letter))
    return grouped


async def send_partition(
    kafka: AIOKafkaProducer, topic: str, partition: int, records: list[Record]
) -> list[Awaitable[Any]]:
    """Hand one partition's records to the producer as whole batches: one delivery future per
    batch instead of one per record."""
    deliveries: list[Awaitable[Any]] = []
    batch = kafka.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is not None:
            continue
        if batch.record_count():
            deliveries.append(await kafka.send_batch(batch, topic, partition=partition))
            batch = kafka.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is not None:
                continue
        # Larger than a whole batch: the producer sends it alone (up to its max request size).
        deliveries.append(await kafka.send(topic, value, key=key, partition=partition))
    if batch.record_count():
        deliveries.append(await kafka.send_batch(batch, topic, partition=partition))
    return deliveries
