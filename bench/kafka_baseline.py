"""B-kafka: raw aiokafka produce + consume of the benchmark's events, one message per event.

``python -m bench.kafka_baseline --bootstrap HOST:PORT --events N`` prints one JSON document.
A producer (acks=all, the worker's linger) writes every event to a fresh 4-partition topic,
keyed by session id, while a consumer in the same process reads them back; the figure is
events / (first send -> last event consumed). No validation, no second hop, no store: the
ceiling for anything that moves these events through Kafka from one Python process.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from typing import Any

import orjson
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.workload import Workload, tenant_keys


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(bootstrap: str, count: int, partitions: int, linger_ms: int) -> dict[str, Any]:
    workload = Workload(tenant_keys(40), 5000, seed=7)
    now = int(time.time() * 1000)
    messages = []
    for session, event in workload.iter_events(count):
        event["timestamp"] = now
        messages.append((session.session_id.encode(), orjson.dumps(event)))
    messages = messages[:count]
    payload_bytes = sum(len(v) for _, v in messages)

    topic = f"bench-kafka-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms)
    await consumer.start()
    await producer.start()
    deadline = time.monotonic() + 20
    while not consumer.assignment() and time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=100)
    try:
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        produced_at = 0.0

        async def produce() -> None:
            nonlocal produced_at
            pending = []
            for key, value in messages:
                pending.append(await producer.send(topic, value, key=key))
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
            produced_at = time.perf_counter()

        async def consume() -> int:
            got = 0
            stop = time.monotonic() + 120
            while got < count and time.monotonic() < stop:
                batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
                got += sum(len(records) for records in batches.values())
            return got

        _, consumed = await asyncio.gather(produce(), consume())
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
    finally:
        await producer.stop()
        await consumer.stop()
    return {
        "events": count,
        "consumed": consumed,
        "payload_bytes_per_event": payload_bytes / count,
        "produce_events_per_s": count / (produced_at - t0),
        "events_per_s": consumed / elapsed,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "cpu_s_per_million": cpu / count * 1e6,
        "linger_ms": linger_ms,
        "partitions": partitions,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.kafka_baseline")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--linger-ms", type=int, default=5)
    args = p.parse_args()
    result = uvloop.run(run(args.bootstrap, args.events, args.partitions, args.linger_ms))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
