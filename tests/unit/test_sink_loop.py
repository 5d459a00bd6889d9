"""agents.sink_loop.SinkLoop: the sink's decisions, with its consumer and store passed in."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from agents.buffer import SinkBuffer
from agents.sink_loop import ShutdownDeadline, SinkLoop
from agents.validate import process_batch
from schemas.records import DeadLetter
from tests.support import events as ev
from tests.unit.factories import SESSION, TENANT, make_batch, policy
from trackflow_app.health import StageHealth

P0 = TopicPartition("processed", 0)
P1 = TopicPartition("processed", 1)


def record(tp: TopicPartition, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 1000 + offset, 0, b"k", value, None, 1, len(value), []
    )


def on(tp: TopicPartition, first: int, values: list[bytes]) -> list[Any]:
    return [record(tp, first + n, value) for n, value in enumerate(values)]


def processed_values(n: int) -> list[bytes]:
    events = [ev.click(TENANT, SESSION) for _ in range(n)]
    return [orjson.dumps(e) for e in process_batch(make_batch(events), policy()).processed]


class Consumer:
    def __init__(self, batches: list[dict[TopicPartition, list[Any]]]) -> None:
        self.batches = batches
        self.commits: list[dict[TopicPartition, int]] = []
        self.owned = {P0, P1}

    async def getmany(self, *_: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        return self.batches.pop(0) if self.batches else {}

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        assert offsets is not None
        self.commits.append(offsets)

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def highwater(self, partition: TopicPartition) -> int | None:
        return None


class Store:
    """Refuses rows holding ``bad`` as data (code 376) and rows that are no JSON object (code 27,
    as ClickHouse's JSONEachRow does), or everything while ``down`` > 0."""

    def __init__(self, bad: bytes = b"\x00", down: int = 0) -> None:
        self.bad = bad
        self.down = down
        self.stored: list[bytes] = []
        self.tokens: list[str] = []

    async def insert_records(self, lines: Sequence[bytes], token: str = "") -> None:
        self.tokens.append(token)
        if self.down:
            self.down -= 1
            raise OSError("Code: 242. DB::Exception: Table is in readonly mode")
        if not all(line.startswith(b"{") for line in lines):
            raise ValueError("Code: 27. DB::Exception: Cannot parse input: expected '{'")
        if any(self.bad in line for line in lines):
            raise ValueError("Code: 376. DB::Exception: Cannot parse uuid")
        self.stored.extend(lines)


def sink(consumer: Consumer, store: Store, batch_size: int = 3) -> tuple[SinkLoop, list[Any]]:
    letters: list[DeadLetter] = []

    async def send(new: list[DeadLetter]) -> None:
        letters.extend(new)

    loop = SinkLoop(
        consumer,
        store,
        send,
        SinkBuffer(batch_size, window_s=60),
        StageHealth("sink", stall_after_s=30),
        retry_max_s=0.01,
        revoke_flush_s=1,
    )
    return loop, letters


async def test_full_buffer_is_stored_then_committed() -> None:
    values = processed_values(3)
    consumer = Consumer([{P0: on(P0, 7, values[:2]), P1: on(P1, 3, values[2:])}])
    store = Store()
    loop, letters = sink(consumer, store)
    assert await loop.step()
    assert len(store.stored) == 3
    assert store.tokens == ["processed/0:7-8@1007,processed/1:3-3@1003:0-3"]
    assert consumer.commits == [{P0: 9, P1: 4}]
    assert letters == []
    assert len(loop.buffer) == 0 and loop.health.pending_since is None


async def test_not_due_is_not_stored() -> None:
    consumer = Consumer([{P0: on(P0, 0, processed_values(1))}])
    store = Store()
    loop, _ = sink(consumer, store)
    assert await loop.step()
    assert store.stored == [] and consumer.commits == []
    assert loop.health.pending_since is not None


async def test_refused_row_is_dead_lettered_and_the_rest_committed() -> None:
    values = processed_values(3)
    bad = values[1].replace(b'"event_id":"', b'"event_id":"BAD-', 1)
    consumer = Consumer([{P0: on(P0, 0, [values[0], bad, values[2]])}])
    store = Store(bad=b"BAD-")
    loop, letters = sink(consumer, store)
    await loop.step()
    assert len(store.stored) == 2
    assert [letter["reason"] for letter in letters] == ["store_rejected_row"]
    assert "Code: 376" in letters[0]["detail"]
    assert consumer.commits == [{P0: 3}]


async def test_unmappable_record_is_dead_lettered_and_its_offset_committed() -> None:
    consumer = Consumer([{P0: on(P0, 0, [b"not json", *processed_values(3)])}])
    store = Store()
    loop, letters = sink(consumer, store)
    await loop.step()
    assert len(store.stored) == 3
    assert [letter["reason"] for letter in letters] == ["unmappable_processed_record"]
    assert letters[0]["detail"].startswith("not JSON") and "Code: 27" in letters[0]["detail"]
    assert letters[0]["event"] == "not json"
    assert consumer.commits == [{P0: 4}]


async def test_empty_record_is_dead_lettered_without_reaching_the_store() -> None:
    consumer = Consumer([{P0: on(P0, 0, [b"", b" \n", *processed_values(3)])}])
    store = Store()
    loop, letters = sink(consumer, store)
    await loop.step()
    assert len(store.stored) == 3 and len(store.tokens) == 1
    assert [letter["reason"] for letter in letters] == ["unmappable_processed_record"] * 2
    assert "processed[0]@1 is empty" in letters[1]["detail"]
    assert consumer.commits == [{P0: 5}]


async def test_refused_record_without_its_times_is_unmappable() -> None:
    values = processed_values(3)
    timeless = orjson.loads(values[1])
    del timeless["received_at"]
    bad = orjson.dumps({**timeless, "user_agent": "REFUSED"})
    consumer = Consumer([{P0: on(P0, 0, [values[0], bad, values[2]])}])
    store = Store(bad=b"REFUSED")
    loop, letters = sink(consumer, store)
    await loop.step()
    assert len(store.stored) == 2
    assert [letter["reason"] for letter in letters] == ["unmappable_processed_record"]
    assert letters[0]["detail"].startswith("received_at is None, not whole milliseconds")
    assert letters[0]["tenant_id"] == TENANT


async def test_store_errors_are_retried_and_reported() -> None:
    consumer = Consumer([{P0: on(P0, 0, processed_values(3))}])
    store = Store(down=2)
    loop, letters = sink(consumer, store)
    await loop.step()
    assert len(store.stored) == 3 and letters == []
    assert len(store.tokens) == 3 and len(set(store.tokens)) == 1  # same token on every retry
    assert consumer.commits == [{P0: 3}]
    assert loop.health.failing_since is None  # cleared by the commit


async def test_stop_deadline_leaves_the_records_uncommitted() -> None:
    consumer = Consumer([{P0: on(P0, 0, processed_values(1))}])
    store = Store(down=10**6)
    loop, _ = sink(consumer, store)
    await loop.step()
    loop.give_up_by(time.monotonic() + 0.05)
    with pytest.raises(ShutdownDeadline):
        await loop.flush()
    assert consumer.commits == []
    assert loop.health.failing_since is not None


async def test_revoked_partitions_are_stored_before_the_rebalance() -> None:
    consumer = Consumer([{P0: on(P0, 0, processed_values(1)), P1: on(P1, 5, processed_values(1))}])
    store = Store()
    loop, _ = sink(consumer, store, batch_size=100)
    await loop.step()
    await loop.flush_before_revoke({P1})
    assert len(store.stored) == 2
    assert consumer.commits == [{P0: 1, P1: 6}]


async def test_revoked_rows_that_cannot_be_stored_are_given_up() -> None:
    consumer = Consumer([{P0: on(P0, 0, processed_values(1)), P1: on(P1, 5, processed_values(1))}])
    store = Store(down=10**6)
    loop, _ = sink(consumer, store, batch_size=100)
    loop.revoke_flush_s = 0.1
    await loop.step()
    await loop.flush_before_revoke({P1})
    assert consumer.commits == []
    assert set(loop.buffer.next_offsets) == {P0}  # P1's next owner re-reads its records
    assert len(loop.buffer) == 1
