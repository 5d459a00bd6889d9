"""Sink: processed topic -> windowed bulk inserts into ClickHouse, offsets committed after insert.

A mode Service inside the Faust worker, reading the processed topic with aiokafka's batched
``getmany`` (Faust's per-message dispatch would cap the sink near 4k records/s). Offsets are
committed only after ClickHouse accepted the rows; a crash between insert and commit re-reads
records, and the table's ReplacingMergeTree collapses those repeats. Scaling: every worker's sink
joins the same consumer group and takes its share of partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import backoff
import mode
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from agents.buffer import SinkBuffer
from agents.rows import to_json_row
from schemas.records import DeadLetter
from trackflow_app import metrics
from trackflow_app.app import app, dead_letter_topic, event_store, settings

log = logging.getLogger(__name__)
READ_CHUNK = 500


class ShutdownDeadline(Exception):
    """Inserts kept failing until the shutdown flush deadline: the records stay uncommitted."""


def rows_of(record: ConsumerRecord[bytes, bytes]) -> tuple[list[bytes], DeadLetter | None]:
    try:
        return [to_json_row(orjson.loads(record.value or b""))], None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        letter: DeadLetter = {
            "reason": "unmappable_processed_record",
            "field": None,
            "detail": f"processed record at {record.topic}[{record.partition}]@{record.offset} "
            f"cannot be mapped to a row: {exc!r}",
            "tenant_id": None,
            "received_at": 0,
            "ip": None,
            "event": (record.value or b"")[:65_536].decode("utf-8", "replace"),
        }
        return [], letter


class EventSink(mode.Service):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buffer = SinkBuffer(settings.sink_batch_size, settings.sink_window_s)
        self.consumer: AIOKafkaConsumer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self._deadline: float | None = None

    async def on_start(self) -> None:
        await event_store.ensure_schema()
        self.consumer = AIOKafkaConsumer(
            settings.processed_topic,
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
        await self.consumer.start()
        self._loop_task = asyncio.create_task(self._consume())
        log.info("sink started topic=%s group=%s", settings.processed_topic, settings.sink_group)

    async def on_stop(self) -> None:
        # The deadline bounds any insert retries in flight too, so shutdown cannot hang.
        self._deadline = time.monotonic() + settings.sink_shutdown_flush_s
        self._closing = True
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
        try:
            await self.flush()
        except ShutdownDeadline:
            log.error(
                "sink stopped with %d rows not stored: their offsets are not committed, so "
                "the next worker to own the partitions re-reads them",
                len(self.buffer),
            )
        if self.consumer is not None:
            await self.consumer.stop()
        await event_store.close()
        log.info("sink stopped")

    async def _consume(self) -> None:
        assert self.consumer is not None
        while not self._closing:
            now = time.monotonic()
            wait_ms = int(self.buffer.time_left(now) * 1000) if len(self.buffer) else 200
            try:
                # Modest reads keep each mapping round short: the edge shares this event loop.
                batches = await self.consumer.getmany(
                    timeout_ms=max(min(wait_ms, 200), 1),
                    max_records=max(min(self.buffer.space(), READ_CHUNK), 1),
                )
            except ConsumerStoppedError:
                return
            now = time.monotonic()
            letters: list[DeadLetter] = []
            for tp, records in batches.items():
                for record in records:
                    rows, letter = rows_of(record)
                    self.buffer.add(tp, record.offset, rows, now)
                    if letter is not None:
                        letters.append(letter)
            metrics.SINK_BUFFERED_ROWS.set(len(self.buffer))
            if letters:
                await self._dead_letter(letters)
            if self.buffer.has_offsets and self.buffer.due(now):
                await self.flush()

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        deliveries = [
            await app.producer.send(
                dead_letter_topic.get_topic_name(), b"", orjson.dumps(letter), None, None, None
            )
            for letter in letters
        ]
        await asyncio.gather(*deliveries)
        for letter in letters:
            metrics.EVENTS_DEAD_LETTERED.labels(letter["reason"]).inc()

    def _give_up(self, _exc: Exception) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    async def flush(self) -> None:
        if not self.buffer.has_offsets:
            return
        if self.buffer.rows:
            await self._insert_with_retry(self.buffer.rows)
            metrics.ROWS_INSERTED.inc(len(self.buffer.rows))
        await self._commit(dict(self.buffer.next_offsets))
        self.buffer.clear()
        metrics.SINK_BUFFERED_ROWS.set(0)

    async def _insert_with_retry(self, rows: list[bytes]) -> None:
        @backoff.on_exception(
            backoff.expo,
            Exception,
            max_value=settings.sink_retry_max_s,
            jitter=backoff.full_jitter,
            giveup=self._give_up,
            on_backoff=self._on_insert_failure,
            raise_on_giveup=True,
        )
        async def attempt() -> None:
            started = time.monotonic()
            await event_store.insert_json(rows)
            metrics.INSERT_SECONDS.observe(time.monotonic() - started)

        try:
            await attempt()
        except Exception as exc:
            raise ShutdownDeadline(str(exc)) from exc

    @staticmethod
    def _on_insert_failure(details: Any) -> None:
        metrics.INSERT_FAILURES.inc()
        log.warning(
            "clickhouse insert failed (attempt %d), retrying in %.1fs: %r",
            details["tries"],
            details.get("wait", 0.0),
            details.get("exception"),
        )

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        owned = self.consumer.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not mine:
            return
        try:
            await self.consumer.commit(mine)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The rows are stored; the partition's next owner re-reads them and the
            # ReplacingMergeTree collapses the repeats.
            log.warning("offset commit failed after insert (rows are stored): %r", exc)


if settings.sink_enabled:
    app.service(EventSink)
