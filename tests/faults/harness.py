"""Fault-suite harness: concurrent clients send a known set of events while faults happen.

Clients behave like the tracker: a batch is retried (same eventIds) on connection errors, 5xx
and 429 until the endpoint answers 202. Afterwards the harness waits until every consumer group
has caught up, stops the workers and counts, per store: rows, unique event_ids and rows visible
through FINAL.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from harness.stack import Worker
from tests.support import events as ev

EVENT_KINDS = (ev.page_view, ev.click, ev.error_in_properties, ev.performance, ev.error_top_level)


class Batch(list[dict[str, Any]]):
    """A batch of events, sent with the client clock ``sent_at`` (now, when None)."""

    sent_at: float | None = None


def make_batches(tenant: str, total: int, batch_size: int) -> list[list[dict[str, Any]]]:
    sessions = [f"fault-{uuid.uuid4().hex[:10]}" for _ in range(max(total // 200, 1))]
    kinds = itertools.cycle(EVENT_KINDS)
    events = [next(kinds)(tenant, sessions[i % len(sessions)]) for i in range(total)]
    return [events[i : i + batch_size] for i in range(0, total, batch_size)]


@dataclass
class LoadStats:
    accepted_ids: set[str] = field(default_factory=set)
    # Every event ever sent: one answered 503 may still be stored (Kafka took it after the
    # edge gave up waiting), which is fine; an event nobody sent is not.
    sent_ids: set[str] = field(default_factory=set)
    accepted_events: int = 0
    retries: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def note(self, outcome: str) -> None:
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


async def _send_batch(
    session: aiohttp.ClientSession,
    urls: Callable[[], str],
    batch: list[dict[str, Any]],
    stats: LoadStats,
    deadline: float,
) -> None:
    sent_at = getattr(batch, "sent_at", None) or ev.now_ms()
    body = orjson.dumps({"events": batch, "sentAt": sent_at})
    stats.sent_ids.update(e["eventId"] for e in batch)
    delay = 0.1
    while time.monotonic() < deadline:
        try:
            async with session.post(
                urls() + "/v1/batch", data=body, headers={"Content-Type": "text/plain"}
            ) as response:
                await response.read()
                outcome = str(response.status)
                if response.status == 202:
                    stats.note(outcome)
                    stats.accepted_events += len(batch)
                    stats.accepted_ids.update(e["eventId"] for e in batch)
                    return
                if response.status not in (429, 500, 502, 503, 504):
                    raise AssertionError(f"unexpected {response.status}: {await response.text()}")
                retry_after = float(response.headers.get("Retry-After", "0") or 0)
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            outcome = type(exc).__name__
            retry_after = 0.0
        stats.note(outcome)
        stats.retries += 1
        await asyncio.sleep(min(max(retry_after, delay * random.uniform(0.5, 1.5)), 2.0))
        delay = min(delay * 2, 1.0)
    raise AssertionError("a batch could not be delivered before the load deadline")


async def run_load(
    base_urls: Callable[[], Sequence[str]],
    batches: list[list[dict[str, Any]]],
    clients: int,
    rate_batches_per_s: float,
    stats: LoadStats,
    deadline_s: float = 600.0,
) -> None:
    """Open-loop-ish: batches are released at a fixed rate to a pool of keep-alive clients."""
    deadline = time.monotonic() + deadline_s
    counter = itertools.count()

    def pick() -> str:
        urls = base_urls()
        return urls[next(counter) % len(urls)]

    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def client() -> None:
            while (batch := await queue.get()) is not None:
                await _send_batch(session, pick, batch, stats, deadline)

        workers = [asyncio.create_task(client()) for _ in range(clients)]
        start = time.monotonic()
        for i, batch in enumerate(batches):
            due = start + i / rate_batches_per_s
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            queue.put_nowait(batch)
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)


async def group_lag(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        [described] = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        assert tps, f"topic {topic} has no partitions"
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        lag = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag += max(ends[tp] - done, 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


def wait_drained(worker: Worker, timeout: float = 180.0) -> float:
    """Wait until the validate stage and the sink have committed everything; seconds taken."""
    env = worker.env
    started = time.monotonic()
    checks = [
        (env["TRACKFLOW_APP_ID"], env["TRACKFLOW_RAW_TOPIC"]),
        (env["TRACKFLOW_SINK_GROUP"], env["TRACKFLOW_PROCESSED_TOPIC"]),
    ]
    while time.monotonic() - started < timeout:
        lags = [asyncio.run(group_lag(worker.broker.bootstrap, g, t)) for g, t in checks]
        if sum(lags) == 0:
            return time.monotonic() - started
        time.sleep(1.0)
    raise AssertionError(f"pipeline did not drain in {timeout}s (lags {lags})")


@dataclass
class StoreCounts:
    rows: int  # physical rows, repeats not yet merged included
    unique: int  # distinct event_ids over all stores
    visible_duplicates: int  # rows a FINAL query shows beyond one per event_id, per store
    cross_store_repeats: int  # the same event_id in two workers' stores (see README)
    missing: int  # accepted (202) event_ids found in no store
    unsent: int  # stored event_ids that no client sent (must be 0)


def count_stores(workers: Sequence[Worker], accepted: set[str], sent: set[str]) -> StoreCounts:
    """Counts over the union of the workers' stores (each chDB store is one process's)."""
    stored: set[str] = set()
    rows = visible = in_stores = 0
    for worker in workers:
        ids = {r["id"] for r in worker.query_store("SELECT toString(event_id) AS id FROM events")}
        [final] = worker.query_store(
            "SELECT count() AS n, uniqExact(event_id) AS u FROM events FINAL"
        )
        [physical] = worker.query_store("SELECT count() AS n FROM events")
        rows += int(physical["n"])
        visible += int(final["n"]) - int(final["u"])
        in_stores += len(ids)
        stored |= ids
    return StoreCounts(
        rows,
        len(stored),
        visible,
        in_stores - len(stored),
        len(accepted - stored),
        len(stored - sent),
    )


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    return "\n".join(lines)


def merge_results(path: Any, title: str, rows: Sequence[dict[str, Any]]) -> str:
    """Write ``rows`` into the results table at ``path``: a scenario run again replaces its
    row, the rows of scenarios not run this time stay (a run of some scenarios with ``-k``
    does not erase the others' figures). Returns the table written."""
    header = list(rows[0])
    kept: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| ") and len(cells) == len(header) and cells != header:
                kept.append(dict(zip(header, cells, strict=True)))
    fresh = {str(r["scenario"]): r for r in rows}
    merged = [fresh.pop(str(r["scenario"]), r) for r in kept] + list(fresh.values())
    table = markdown_table(merged)
    path.write_text(f"{title}:\n\n{table}\n")
    return table
