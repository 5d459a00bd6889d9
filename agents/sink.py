"""Sink: processed topic -> windowed bulk inserts into ClickHouse, offsets committed after insert.

A mode Service inside the Faust worker, reading the processed topic with aiokafka's batched
``getmany`` (Faust's per-message dispatch would cap the sink near 4k records/s). Offsets are
committed only after ClickHouse accepted the rows; a crash between insert and commit re-reads
records, and the insert's deduplication token plus the table's ReplacingMergeTree collapse those
repeats. Rows the store refuses as data errors are isolated by bisection and dead-lettered
(agents.insert_errors); store failures are retried. Scaling: every worker's sink joins the same
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
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from agents.buffer import SinkBuffer
from agents.fanout import encode_letter
from agents.insert_errors import RowFailure, insert_isolating
from agents.rows import to_json_row
from schemas.records import DeadLetter, dead_letter
from trackflow_app import health, metrics
from trackflow_app.app import app, dead_letter_topic, event_store, settings

log = logging.getLogger(__name__)
READ_CHUNK = 500


class ShutdownDeadline(Exception):
    """Inserts kept failing until the shutdown flush deadline: the records stay uncommitted."""


def rows_of(record: ConsumerRecord[bytes, bytes]) -> tuple[list[bytes], DeadLetter | None]:
    try:
        return [to_json_row(orjson.loads(record.value or b""))], None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return [], dead_letter(
            "unmappable_processed_record",
            f"processed record at {record.topic}[{record.partition}]@{record.offset} "
            f"cannot be mapped to a row: {exc!r}",
            (record.value or b"")[:65_536].decode("utf-8", "replace"),
        )


def refused_row(row: bytes, failure: RowFailure) -> DeadLetter:
    """The dead letter of a row the store refused, with the store's message as the reason."""
    try:
        event: Any = orjson.loads(row)
    except orjson.JSONDecodeError:
        event = row[:65_536].decode("utf-8", "replace")
    fields = event if isinstance(event, dict) else {}
    tenant = fields.get("tenant_id")
    return dead_letter(
        "store_rejected_row",
        str(failure.error)[:2000],
        event,
        tenant_id=tenant if isinstance(tenant, str) else None,
        ip=fields.get("ip_address") if isinstance(fields.get("ip_address"), str) else None,
    )


class _FlushBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.sink.flush_before_revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("sink assigned partitions=%s", sorted(tp.partition for tp in assigned))


class EventSink(mode.Service):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buffer = SinkBuffer(settings.sink_batch_size, settings.sink_window_s)
        self.consumer: AIOKafkaConsumer | None = None
        self.health = health.stage("sink", settings.ready_stall_s)
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._closing = False
        self._deadline: float | None = None

    async def on_start(self) -> None:
        await event_store.ensure_schema()
        self.consumer = AIOKafkaConsumer(
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
        self.consumer.subscribe([settings.processed_topic], listener=_FlushBeforeRevoke(self))
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
                    self.buffer.add(tp, record.offset, rows, now, record.timestamp)
                    if letter is not None:
                        letters.append(letter)
            if self.buffer.has_offsets:
                self.health.holding(now)
            self.health.lag = self._lag()
            metrics.SINK_BUFFERED_ROWS.set(len(self.buffer))
            if letters:
                await self._dead_letter(letters)
            if self.buffer.has_offsets and self.buffer.due(now):
                try:
                    await self.flush()
                except ShutdownDeadline:
                    return

    def _lag(self) -> int:
        assert self.consumer is not None
        total = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = self.buffer.next_offsets.get(tp)
            if highwater is not None and position is not None:
                total += max(highwater - position, 0)
        return total

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        topic = dead_letter_topic.get_topic_name()
        deliveries = [
            await app.producer.send(topic, b"", encode_letter(letter), None, None, None)
            for letter in letters
        ]
        await asyncio.gather(*deliveries)
        for letter in letters:
            metrics.EVENTS_DEAD_LETTERED.labels(letter["reason"]).inc()

    def _give_up(self, _exc: Exception) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    async def flush(self) -> None:
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        if not self.buffer.has_offsets:
            return
        if self.buffer.rows:
            await self._store_with_retry(self.buffer.rows, self.buffer.dedup_token())
        await self._commit(dict(self.buffer.next_offsets))
        self.buffer.clear()
        self.health.committed(time.monotonic())
        metrics.SINK_BUFFERED_ROWS.set(0)

    async def flush_before_revoke(self, revoked: set[TopicPartition]) -> None:
        """Store and commit what was read from partitions about to move to another worker, so
        that their next owner does not store the same rows again."""
        if not revoked & set(self.buffer.next_offsets):
            return
        try:
            await asyncio.wait_for(self.flush(), timeout=settings.session_timeout_s / 2)
        except (TimeoutError, ShutdownDeadline) as exc:
            dropped = self.buffer.drop_partitions(revoked)
            log.warning(
                "sink could not store %d rows of revoked partitions before the rebalance "
                "(%r); their next owner re-reads them",
                dropped,
                exc,
            )
            if not self.buffer.has_offsets:
                self.health.released()

    async def _store_with_retry(self, rows: list[bytes], token: str) -> None:
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
            failures = await insert_isolating(rows, self._insert, token)
            if failures:
                await self._dead_letter([refused_row(rows[f.index], f) for f in failures])
                metrics.ROWS_REJECTED_BY_STORE.inc(len(failures))
                log.warning(
                    "store refused %d of %d rows as invalid data; dead-lettered (first: %s)",
                    len(failures),
                    len(rows),
                    str(failures[0].error).splitlines()[0][:300],
                )
            metrics.INSERT_SECONDS.observe(time.monotonic() - started)
            metrics.ROWS_INSERTED.inc(len(rows) - len(failures))

        try:
            await attempt()
        except Exception as exc:
            raise ShutdownDeadline(str(exc)) from exc

    @staticmethod
    async def _insert(rows: Sequence[bytes], token: str) -> None:
        await event_store.insert_json(rows, token)

    def _on_insert_failure(self, details: Any) -> None:
        error = details.get("exception")
        metrics.INSERT_FAILURES.inc()
        if isinstance(error, BaseException):
            self.health.failed(time.monotonic(), error)
        log.warning(
            "clickhouse insert failed (attempt %d), retrying in %.1fs: %r",
            details["tries"],
            details.get("wait", 0.0),
            error,
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
