"""Read a topic from the test process with aiokafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer


async def _read(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], timeout: float
) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(values) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return values


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """At least ``count`` JSON values from the topic (fewer if the timeout passes first)."""
    return asyncio.run(_read(bootstrap, topic, lambda values: len(values) >= count, timeout))


def read_topic_until(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], timeout: float = 60.0
) -> list[Any]:
    """The topic's JSON values from its start, read until ``done(values)`` or the timeout."""
    return asyncio.run(_read(bootstrap, topic, done, timeout))
