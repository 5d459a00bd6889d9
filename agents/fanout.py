"""Fan-out to Kafka in whole batches: the records of one validated window grouped by
destination partition (pure), and one partition's records handed to the producer as batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from agents.validate import Outcome
from schemas.records import DeadLetter, ProcessedEvent, dead_letter

Record = tuple[bytes, bytes]  # key, value


def encode_letter(letter: DeadLetter) -> bytes:
    """A dead letter as JSON; an event that cannot be written as JSON is kept as its repr."""
    try:
        return orjson.dumps(letter)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps({**letter, "event": repr(letter["event"])[:65_536]})


def encode_event(event: ProcessedEvent) -> tuple[bytes | None, DeadLetter | None]:
    """A processed event as JSON, or the dead letter saying why it cannot be written.

    Validation keeps every value encodable; this is the containment for anything it missed, so
    that one event can never stop the stage by failing its publish again and again.
    """
    try:
        return orjson.dumps(event), None
    except (TypeError, orjson.JSONEncodeError) as exc:
        letter = dead_letter(
            "unencodable_event",
            f"processed event cannot be written as JSON: {exc}",
            repr(event)[:65_536],
            tenant_id=event.get("tenant_id"),
            received_at=event.get("received_at") or 0,
            ip=event.get("ip_address"),
        )
        return None, letter


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

    def add_letter(letter: DeadLetter) -> None:
        add(dead_letters, (letter["tenant_id"] or "").encode(), encode_letter(letter))

    for outcome in outcomes:
        outcome.unencodable.clear()  # filled again below: publishing may be retried
        for event in outcome.processed:
            value, letter = encode_event(event)
            if value is not None:
                add(processed, event["session_id"].encode(), value)
            elif letter is not None:
                outcome.unencodable.append(letter)
                add_letter(letter)
        for letter in outcome.rejected:
            add_letter(letter)
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
