"""Sink: processed topic -> windowed bulk inserts into ClickHouse, offsets committed after insert.

A mode Service inside the Faust worker that wires the real parts into ``agents.sink_loop``: an
aiokafka consumer of the processed topic read with batched ``getmany`` (Faust's per-message
dispatch would cap the sink near 4k records/s), the ClickHouse store and the worker's Kafka
producer for dead letters. Offsets are committed only after ClickHouse accepted the rows; a
crash between insert and commit re-reads records, and the insert's deduplication token plus the
table's ReplacingMergeTree collapse those repeats. Scaling: every worker's sink joins the same
consumer group and takes its share of partitions; revoked partitions are stored and committed
before they are given up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import backoff
import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

# A module import: agents.sink_loop may still be initializing when the app registers this sink.
import agents.sink_loop as core
from agents.buffer import SinkBuffer
from agents.fanout import encode_letter
from schemas.records import DeadLetter
from trackflow_app import health, metrics
from trackflow_app.app import app, dead_letter_topic, event_store, settings
from trackflow_app.store import describe_url

log = logging.getLogger(__name__)


async def send_dead_letters(letters: list[DeadLetter]) -> None:
    """Send dead letters and wait until Kafka acknowledged all of them."""
    topic = dead_letter_topic.get_topic_name()
    deliveries = [
        await app.producer.send(topic, b"", encode_letter(letter), None, None, None)
        for letter in letters
    ]
    await asyncio.gather(*deliveries)
    for letter in letters:
        metrics.EVENTS_DEAD_LETTERED.labels(letter["reason"]).inc()


async def sample_store_activity(interval_s: float) -> None:
    """Keep the store's merge and part gauges current: a merge that holds memory or a part count
    that only grows is what slows inserts and reads."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            metrics.record_store_activity(await event_store.activity())
        except Exception as exc:  # a gauge must never stop the sink
            log.warning("store activity not sampled: %s", exc)


class _FlushBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if self.sink.core is not None:
            await self.sink.core.flush_before_revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("sink assigned partitions=%s", sorted(tp.partition for tp in assigned))


def new_consumer() -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.sink_group,
        client_id=f"{settings.app_id}-sink",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # Let fetches fill up a little instead of returning each record as it arrives.
        fetch_min_bytes=64 * 1024,
        fetch_max_wait_ms=100,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.session_timeout_s * 200),
    )


def _log_store_not_answering(details: Any) -> None:
    log.error(
        "clickhouse not reachable at %s (attempt %d), retrying in %.1fs: %r; events wait in "
        "Kafka until it answers",
        describe_url(settings.clickhouse_url),
        details["tries"],
        details.get("wait", 0.0),
        details.get("exception"),
    )


class EventSink(mode.Service):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.consumer: AIOKafkaConsumer | None = None
        self.core: core.SinkLoop | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._store_stats_task: asyncio.Task[None] | None = None
        self._start_task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        if settings.clickhouse_url.startswith("chdb://"):
            await event_store.ensure_schema()  # an embedded store that cannot open stops the worker
            await self._start_consuming()
        else:
            # A server may come up after the worker: the edge and the validate stage run
            # meanwhile (events wait in Kafka) and /readyz says the store is not there yet.
            self._start_task = asyncio.create_task(self._start_when_store_answers())

    async def _start_when_store_answers(self) -> None:
        @backoff.on_exception(
            backoff.expo,
            Exception,
            max_value=settings.sink_retry_max_s,
            jitter=backoff.full_jitter,
            on_backoff=_log_store_not_answering,
        )
        async def ensure_schema() -> None:
            await event_store.ensure_schema()

        try:
            await ensure_schema()
            await self._start_consuming()
        except Exception as exc:  # as if on_start had raised it: the worker stops
            await self.crash(exc)

    async def _start_consuming(self) -> None:
        self.consumer = new_consumer()
        self.core = core.SinkLoop(
            self.consumer,
            event_store,
            send_dead_letters,
            SinkBuffer(settings.sink_batch_size, settings.sink_window_s),
            health.stage("sink", settings.ready_stall_s),
            retry_max_s=settings.sink_retry_max_s,
            revoke_flush_s=settings.session_timeout_s / 2,
        )
        self.consumer.subscribe([settings.processed_topic], listener=_FlushBeforeRevoke(self))
        await self.consumer.start()
        self._loop_task = asyncio.create_task(self.core.run())
        if settings.store_stats_interval_s > 0:
            self._store_stats_task = asyncio.create_task(
                sample_store_activity(settings.store_stats_interval_s)
            )
        log.info("sink started topic=%s group=%s", settings.processed_topic, settings.sink_group)

    async def on_stop(self) -> None:
        if self._start_task is not None:
            self._start_task.cancel()  # if the store never answered, nothing was read or buffered
            await asyncio.gather(self._start_task, return_exceptions=True)
        if self._store_stats_task is not None:
            self._store_stats_task.cancel()
            await asyncio.gather(self._store_stats_task, return_exceptions=True)
        if self.core is not None:
            # The deadline bounds any insert retries in flight too, so shutdown cannot hang.
            self.core.give_up_by(time.monotonic() + settings.sink_shutdown_flush_s)
            if self._loop_task is not None:
                await asyncio.gather(self._loop_task, return_exceptions=True)
            try:
                await self.core.flush()
            except core.ShutdownDeadline:
                log.error(
                    "sink stopped with %d rows not stored: their offsets are not committed, "
                    "so the next worker to own the partitions re-reads them",
                    len(self.core.buffer),
                )
        if self.consumer is not None:
            await self.consumer.stop()
        await event_store.close()
        log.info("sink stopped")


if settings.sink_enabled:
    app.service(EventSink)
