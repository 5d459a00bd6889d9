"""agents.buffer.SinkBuffer: when to flush and which offsets to commit."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from agents.buffer import SinkBuffer

P0 = TopicPartition("trackflow-processed", 0)
P1 = TopicPartition("trackflow-processed", 1)


def rows(n: int) -> list[list[int]]:
    return [[i] for i in range(n)]


def test_empty_buffer() -> None:
    buffer = SinkBuffer(max_records=10, window_s=0.5)
    assert len(buffer) == 0
    assert not buffer.has_offsets
    assert not buffer.due(now=1e9)
    assert buffer.time_left(now=123.0) == 0.5
    assert buffer.space() == 10


def test_due_by_count() -> None:
    buffer = SinkBuffer(max_records=5, window_s=60)
    buffer.add(P0, 0, rows(4), now=100.0)
    assert not buffer.due(now=100.0)
    assert buffer.space() == 1
    buffer.add(P0, 1, rows(1), now=100.1)
    assert buffer.due(now=100.1)
    assert buffer.space() == 0
    buffer.add(P0, 2, rows(3), now=100.2)
    assert len(buffer) == 8
    assert buffer.space() == 0


def test_due_by_window_measured_from_first_add() -> None:
    buffer = SinkBuffer(max_records=1000, window_s=0.5)
    buffer.add(P0, 0, rows(1), now=10.0)
    buffer.add(P0, 1, rows(1), now=10.4)  # a later add does not restart the window
    assert not buffer.due(now=10.49)
    assert buffer.due(now=10.5)
    assert buffer.due(now=11.0)


def test_time_left() -> None:
    buffer = SinkBuffer(max_records=1000, window_s=2.0)
    buffer.add(P0, 0, rows(1), now=50.0)
    assert buffer.time_left(now=50.5) == 1.5
    assert buffer.time_left(now=52.0) == 0.0
    assert buffer.time_left(now=60.0) == 0.0


def test_offsets_are_max_plus_one_per_partition() -> None:
    buffer = SinkBuffer(max_records=1000, window_s=1.0)
    buffer.add(P0, 7, rows(1), now=0.0)
    buffer.add(P1, 3, rows(2), now=0.0)
    buffer.add(P0, 5, rows(1), now=0.0)  # out of order: never moves back
    buffer.add(P0, 9, [], now=0.0)  # a record that produced no rows still counts
    assert buffer.next_offsets == {P0: 10, P1: 4}
    assert buffer.has_offsets
    assert len(buffer) == 4


def test_offset_zero_commits_one() -> None:
    buffer = SinkBuffer(max_records=10, window_s=1.0)
    buffer.add(P1, 0, rows(1), now=0.0)
    assert buffer.next_offsets == {P1: 1}


def test_rows_keep_insertion_order() -> None:
    buffer = SinkBuffer(max_records=10, window_s=1.0)
    buffer.add(P0, 0, [["a"], ["b"]], now=0.0)
    buffer.add(P1, 0, [["c"]], now=0.0)
    assert buffer.rows == [["a"], ["b"], ["c"]]


def test_clear_resets_everything() -> None:
    buffer = SinkBuffer(max_records=2, window_s=1.0)
    buffer.add(P0, 4, rows(3), now=5.0)
    assert buffer.due(now=5.0)
    buffer.clear()
    assert len(buffer) == 0
    assert buffer.next_offsets == {}
    assert buffer.opened_at is None
    assert not buffer.due(now=100.0)
    assert buffer.time_left(now=100.0) == 1.0
    buffer.add(P0, 1, rows(1), now=200.0)
    assert buffer.next_offsets == {P0: 2}  # the old max is forgotten
    assert buffer.time_left(now=200.25) == 0.75


def test_dedup_token_names_the_kafka_records() -> None:
    buffer = SinkBuffer(max_records=100, window_s=1)
    buffer.add(P1, 7, rows(1), now=1.0, timestamp_ms=111)
    buffer.add(P0, 40, rows(1), now=1.0, timestamp_ms=222)
    buffer.add(P0, 41, rows(1), now=1.0, timestamp_ms=333)
    token = buffer.dedup_token()
    assert token == "trackflow-processed/0:40-41@222,trackflow-processed/1:7-7@111"
    again = SinkBuffer(max_records=100, window_s=1)
    again.add(P0, 40, rows(1), now=2.0, timestamp_ms=222)
    again.add(P0, 41, rows(1), now=2.0, timestamp_ms=333)
    again.add(P1, 7, rows(1), now=2.0, timestamp_ms=111)
    assert again.dedup_token() == token
    recreated = SinkBuffer(max_records=100, window_s=1)
    recreated.add(P0, 40, rows(1), now=2.0, timestamp_ms=999)
    assert recreated.dedup_token() != again.dedup_token()


def test_drop_partitions_keeps_the_others() -> None:
    buffer = SinkBuffer(max_records=100, window_s=1)
    buffer.add(P0, 0, [["a"], ["b"]], now=1.0)
    buffer.add(P1, 5, [["c"]], now=1.0)
    assert buffer.drop_partitions({P0}) == 2
    assert buffer.rows == [["c"]]
    assert buffer.next_offsets == {P1: 6}
    assert buffer.drop_partitions({P1}) == 1
    assert not buffer.has_offsets
    assert buffer.opened_at is None
