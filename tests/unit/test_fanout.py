"""agents.fanout.records_by_partition: each record once, grouped by (topic, partition), in order."""

from __future__ import annotations

from typing import Any, cast

import orjson

from agents.fanout import encode_event, records_by_partition
from agents.validate import Outcome, process_batch
from schemas.records import DeadLetter, ProcessedEvent
from tests.support import events as ev
from tests.unit.factories import SESSION, TENANT, make_batch, policy


def processed(event_id: str, session: str) -> ProcessedEvent:
    return cast(ProcessedEvent, {"event_id": event_id, "session_id": session})


def letter(tenant: str | None, reason: str) -> DeadLetter:
    return cast(DeadLetter, {"reason": reason, "tenant_id": tenant})


def test_records_are_grouped_by_partition_keeping_order_and_counting_each_once() -> None:
    calls: list[tuple[str, bytes]] = []

    def partition_of(topic: str, key: bytes) -> int:
        calls.append((topic, key))
        return {b"s1": 0, b"s2": 1, b"s3": 0}.get(key, 0)

    outcomes = [
        Outcome(processed=[processed("e1", "s1"), processed("e2", "s2"), processed("e3", "s1")]),
        Outcome(processed=[processed("e4", "s3")], rejected=[letter("acme", "bad_type")]),
        Outcome(rejected=[letter(None, "malformed_raw_record")]),
    ]
    grouped = records_by_partition(outcomes, "processed", "dead", partition_of)

    def ids(records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, Any]]:
        return [(key, orjson.loads(value).get("event_id")) for key, value in records]

    assert set(grouped) == {("processed", 0), ("processed", 1), ("dead", 0)}
    assert ids(grouped[("processed", 0)]) == [(b"s1", "e1"), (b"s1", "e3"), (b"s3", "e4")]
    assert ids(grouped[("processed", 1)]) == [(b"s2", "e2")]
    assert [(k, orjson.loads(v)["reason"]) for k, v in grouped[("dead", 0)]] == [
        (b"acme", "bad_type"),
        (b"", "malformed_raw_record"),
    ]
    # One partitioner call per distinct (topic, key), not per record.
    assert sorted(calls) == sorted(
        [("processed", b"s1"), ("processed", b"s2"), ("processed", b"s3"), ("dead", b"acme"),
         ("dead", b"")]
    )  # fmt: skip


def test_nothing_to_send() -> None:
    assert records_by_partition([Outcome()], "p", "d", lambda topic, key: 0) == {}


def test_unencodable_event_is_dead_lettered_not_published() -> None:
    good = process_batch(make_batch([ev.click(TENANT, SESSION)]), policy()).processed[0]
    bad = {**good, "seq": 2**70}  # beyond what orjson writes
    value, letter = encode_event(bad)  # type: ignore[arg-type]
    assert value is None and letter is not None
    assert letter["reason"] == "unencodable_event"
    assert "64-bit" in letter["detail"]
    outcome = Outcome(processed=[good, bad])  # type: ignore[list-item]
    grouped = records_by_partition([outcome], "p", "d", lambda topic, key: 0)
    assert len(grouped[("p", 0)]) == 1
    assert len(grouped[("d", 0)]) == 1
    assert [letter["reason"] for letter in outcome.unencodable] == ["unencodable_event"]
    # Publishing may be retried: grouping again does not double the letters.
    records_by_partition([outcome], "p", "d", lambda topic, key: 0)
    assert len(outcome.unencodable) == 1
