"""The sink's decisions, with its consumer, store and dead-letter producer passed in.

What to read next, when a buffer is due, which rows the store refused, what to dead-letter, what
to commit and when to give up: all here, testable with any objects of the shapes below.
``agents.sink`` wires the real aiokafka consumer, ClickHouse store and Kafka producer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import backoff
import orjson
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from agents.buffer import SinkBuffer
from agents.insert_errors import RowFailure, insert_isolating
from agents.rows import record_problem
from schemas.records import DeadLetter, dead_letter
from trackflow_app import metrics
from trackflow_app.health import StageHealth

log = logging.getLogger(__name__)
READ_CHUNK = 500


class SinkConsumer(Protocol):
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = ..., max_records: int | None = ...
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...

    async def commit(self, offsets: dict[TopicPartition, int] | None = ...) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...


class RowStore(Protocol):
    async def insert_records(self, records: Sequence[bytes], token: str = "") -> None: ...


SendDeadLetters = Callable[[list[DeadLetter]], Awaitable[None]]


class ShutdownDeadline(Exception):
    """Inserts kept failing until the shutdown flush deadline: the records stay uncommitted."""


def rows_of(record: ConsumerRecord[bytes, bytes]) -> tuple[list[bytes], DeadLetter | None]:
    """The record is its own row: the store maps it (schemas.ddl.record_insert_sql). An empty
    one is refused here, as the insert would read it as no row at all."""
    value = record.value or b""
    if value.strip():
        return [value], None
    return [], dead_letter(
        "unmappable_processed_record",
        f"processed record at {record.topic}[{record.partition}]@{record.offset} is empty",
        value.decode("utf-8", "replace"),
    )


def refused_row(row: bytes, failure: RowFailure) -> DeadLetter:
    """The dead letter of a record the store refused: unmappable_processed_record when it is no
    processed event at all, else store_rejected_row, with the store's message either way."""
    try:
        event: Any = orjson.loads(row)
    except orjson.JSONDecodeError:
        event = row[:65_536].decode("utf-8", "replace")
    fields = event if isinstance(event, dict) else {}
    tenant = fields.get("tenant_id")
    ip = fields.get("ip_address")
    problem = record_problem(row)
    store_message = str(failure.error)[:2000]
    return dead_letter(
        "store_rejected_row" if problem is None else "unmappable_processed_record",
        store_message if problem is None else f"{problem}; the store: {store_message}",
        event,
        tenant_id=tenant if isinstance(tenant, str) else None,
        ip=ip if isinstance(ip, str) else None,
    )


class SinkLoop:
    def __init__(
        self,
        consumer: SinkConsumer,
        store: RowStore,
        send_dead_letters: SendDeadLetters,
        buffer: SinkBuffer,
        health: StageHealth,
        retry_max_s: float,
        revoke_flush_s: float,
    ) -> None:
        self.consumer = consumer
        self.store = store
        self.send_dead_letters = send_dead_letters
        self.buffer = buffer
        self.health = health
        self.retry_max_s = retry_max_s
        self.revoke_flush_s = revoke_flush_s
        self.closing = False
        self.deadline: float | None = None
        self._flush_lock = asyncio.Lock()

    # -- reading -------------------------------------------------------------------------
    async def run(self) -> None:
        while not self.closing:
            if not await self.step():
                return

    async def step(self) -> bool:
        """Read once, buffer, flush when due. False once the consumer has stopped."""
        now = time.monotonic()
        wait_ms = int(self.buffer.time_left(now) * 1000) if len(self.buffer) else 200
        try:
            # Modest reads keep each mapping round short: the edge shares this event loop.
            batches = await self.consumer.getmany(
                timeout_ms=max(min(wait_ms, 200), 1),
                max_records=max(min(self.buffer.space(), READ_CHUNK), 1),
            )
        except ConsumerStoppedError:
            return False
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
        self.health.lag = self.lag()
        metrics.SINK_BUFFERED_ROWS.set(len(self.buffer))
        if letters:
            await self.send_dead_letters(letters)
        if self.buffer.has_offsets and self.buffer.due(now):
            try:
                await self.flush()
            except ShutdownDeadline:
                return False
        return True

    def lag(self) -> int:
        total = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = self.buffer.next_offsets.get(tp)
            if highwater is not None and position is not None:
                total += max(highwater - position, 0)
        return total

    # -- storing and committing ----------------------------------------------------------
    async def flush(self) -> None:
        async with self._flush_lock:
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
            await asyncio.wait_for(self.flush(), timeout=self.revoke_flush_s)
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

    def give_up_by(self, deadline: float) -> None:
        """From now on, failing inserts are retried only until ``deadline`` (monotonic)."""
        self.deadline = deadline
        self.closing = True

    def _give_up(self, _exc: Exception) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    async def _store_with_retry(self, rows: list[bytes], token: str) -> None:
        @backoff.on_exception(
            backoff.expo,
            Exception,
            max_value=self.retry_max_s,
            jitter=backoff.full_jitter,
            giveup=self._give_up,
            on_backoff=self._on_insert_failure,
            raise_on_giveup=True,
        )
        async def attempt() -> None:
            started = time.monotonic()
            failures = await insert_isolating(rows, self.store.insert_records, token)
            if failures:
                await self.send_dead_letters([refused_row(rows[f.index], f) for f in failures])
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
        owned = self.consumer.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not mine:
            return
        try:
            await self.consumer.commit(mine)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The rows are stored; the partition's next owner re-reads them, and the insert
            # token and the ReplacingMergeTree collapse the repeats.
            log.warning("offset commit failed after insert (rows are stored): %r", exc)
