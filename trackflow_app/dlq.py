"""Inspect and replay the dead-letter topic.

    python -m trackflow_app dlq show [--reason R] [--limit N]
    python -m trackflow_app dlq replay [--reason R] [--dry-run]

``replay`` sends each dead-lettered event back to the raw topic as a one-event batch under the
API key its request was authenticated with (same receive time and client IP), so it is
validated again by the current code and settings: fix the cause (a missing API key, a too-tight
limit), then replay. A ``tenant_mismatch`` letter is never replayed: its event claims a tenant
its request could not speak for, and replaying it under the claimed tenant would store a
spoofed event there.

A replay remembers how far it read in a consumer group of its own, one per ``--reason`` (and
one for a replay of every reason): a second replay of a reason only sees its letters written
after the first one, while letters of other reasons stay for their own replay once their cause
is fixed.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord, TopicPartition

from schemas.records import DeadLetter, RawBatch, raw_batch
from trackflow_app.settings import Settings

REPLAY_GROUP_SUFFIX = "-dlq-replay"


NEVER_REPLAYED = frozenset({"tenant_mismatch"})


def replay_group(app_id: str, reason: str | None) -> str:
    """The consumer group that remembers what a replay of ``reason`` (None: every reason) read."""
    group = app_id + REPLAY_GROUP_SUFFIX
    return group if reason is None else f"{group}-{reason}"


def replay_batch(letter: DeadLetter) -> RawBatch | None:
    """The raw batch that re-submits a dead-lettered event, or None if it cannot be re-sent.

    The batch carries the key that authenticated the original request, never the tenant the
    event names: validation then applies the same tenant check as on first arrival.
    """
    event = letter.get("event")
    api_key = letter.get("api_key")
    if letter.get("reason") in NEVER_REPLAYED or not isinstance(event, dict) or not api_key:
        return None
    return raw_batch(
        [event],
        api_key=api_key,
        received_at=letter["received_at"],
        ip=letter.get("ip"),
        user_agent=letter.get("user_agent") or "",
    )


def no_broker(settings: Settings, error: KafkaConnectionError) -> SystemExit:
    return SystemExit(f"TrackFlow: no Kafka broker at {settings.kafka_bootstrap}: {error}")


async def _letters(
    settings: Settings, group: str | None, idle_ms: int = 2000, replays: bool = False
) -> AsyncIterator[tuple[AIOKafkaConsumer, ConsumerRecord[bytes, bytes]]]:
    """The letters the topic holds when this is called (from ``group``'s committed offsets).

    Letters written later are left for the next call: a replay whose event is dead-lettered
    again (its cause not fixed yet) would otherwise read and send its own new letters without end.
    """
    topic = settings.dead_letter_topic
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
        needed = {"DEAD_LETTER": topic, **({"RAW": settings.raw_topic} if replays else {})}
        existing = await consumer.topics()
        for setting, name in needed.items():
            if name not in existing:
                raise SystemExit(
                    f"TrackFlow: the topic {name} (TRACKFLOW_{setting}_TOPIC) does not exist on "
                    f"{settings.kafka_bootstrap}: no worker has started with it there"
                )
        consumer.subscribe([topic])
        ends: dict[TopicPartition, int] | None = None
        while True:
            batches = await consumer.getmany(timeout_ms=idle_ms)
            if not batches:
                return
            if ends is None:  # before the first letter is yielded (and maybe replayed)
                ends = await consumer.end_offsets(
                    [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
                )
            for partition, records in batches.items():
                for record in records:
                    if record.offset < ends.get(partition, 0):
                        yield consumer, record
            assigned = consumer.assignment()
            positions = [(tp, await consumer.position(tp)) for tp in assigned]
            if assigned and all(at >= ends.get(tp, 0) for tp, at in positions):
                return
    except KafkaConnectionError as error:
        raise no_broker(settings, error) from None
    finally:
        await consumer.stop()


def _matches(letter: dict[str, Any], reason: str | None) -> bool:
    return reason is None or letter.get("reason") == reason


async def show(settings: Settings, reason: str | None, limit: int) -> int:
    shown = 0
    async for _, record in _letters(settings, group=None):
        if shown >= limit:
            break
        letter = orjson.loads(record.value or b"{}")
        if not _matches(letter, reason):
            continue
        line = {"partition": record.partition, "offset": record.offset, **letter}
        sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
        shown += 1
    print(f"{shown} dead letters shown", file=sys.stderr)
    return 0


async def replay(settings: Settings, reason: str | None, dry_run: bool) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    sent = skipped = 0
    try:
        try:
            await producer.start()
        except KafkaConnectionError as error:
            raise no_broker(settings, error) from None
        async for consumer, record in _letters(
            settings, replay_group(settings.app_id, reason), replays=not dry_run
        ):
            letter = orjson.loads(record.value or b"{}")
            batch = replay_batch(letter) if _matches(letter, reason) else None
            if batch is None:
                skipped += 1
            else:
                sent += 1
            if dry_run:
                continue
            if batch is not None:
                await producer.send_and_wait(settings.raw_topic, orjson.dumps(batch))
            # This letter only: a commit without offsets would also pass the rest of its fetch.
            await consumer.commit(
                {TopicPartition(record.topic, record.partition): record.offset + 1}
            )
    finally:
        await producer.stop()
    verb = "would replay" if dry_run else "replayed"
    print(f"{verb} {sent} events; {skipped} letters skipped", file=sys.stderr)
    return 0
