"""agents.validate.process_raw_record: a raw record holds one raw batch or a group of them."""

from __future__ import annotations

import orjson

from agents.validate import process_batch, process_raw_record, rounds_by_bytes
from tests.support import events as ev
from tests.unit.factories import SESSION, TENANT, make_batch, policy

POLICY = policy()


def ids(events: list[object]) -> list[str]:
    return [e["event_id"] for e in events]  # type: ignore[index]


def test_a_single_batch_is_processed_as_before() -> None:
    batch = make_batch([ev.page_view(TENANT, SESSION), ev.click(TENANT, SESSION)])
    outcome = process_raw_record(orjson.dumps(batch), POLICY)
    assert outcome == process_batch(batch, POLICY)
    assert len(outcome.processed) == 2


def test_a_group_yields_every_batch_in_order() -> None:
    first = make_batch([ev.page_view(TENANT, SESSION), ev.click(TENANT, SESSION)])
    second = make_batch([ev.click(TENANT, SESSION)], ip="198.51.100.7")
    outcome = process_raw_record(orjson.dumps([first, second]), POLICY)
    expected = [*process_batch(first, POLICY).processed, *process_batch(second, POLICY).processed]
    assert ids(outcome.processed) == ids(expected)
    assert [e["ip_address"] for e in outcome.processed][-1] == "198.51.100.7"
    assert outcome.rejected == []


def test_an_unreadable_batch_in_a_group_is_dead_lettered_alone() -> None:
    good = make_batch([ev.page_view(TENANT, SESSION)])
    outcome = process_raw_record(orjson.dumps([good, {"no_events": True}, 7]), POLICY)
    assert ids(outcome.processed) == ids(process_batch(good, POLICY).processed)
    assert [letter["reason"] for letter in outcome.rejected] == ["malformed_raw_record"] * 2
    assert "no_events" in str(outcome.rejected[0]["event"])


def test_bad_events_in_a_group_keep_their_own_reasons() -> None:
    bad = ev.click(TENANT, SESSION)
    bad["eventType"] = "nope"
    group = [make_batch([ev.page_view(TENANT, SESSION)]), make_batch([bad])]
    outcome = process_raw_record(orjson.dumps(group), POLICY)
    assert len(outcome.processed) == 1
    assert [letter["reason"] for letter in outcome.rejected] == ["unknown_event_type"]


def test_undecodable_and_empty_records_are_dead_letters() -> None:
    for value in (b"", b"{not json", b"[]"):
        outcome = process_raw_record(value, POLICY)
        assert outcome.processed == []
        assert [letter["reason"] for letter in outcome.rejected] == ["malformed_raw_record"]


def test_a_batch_whose_fields_have_the_wrong_values_is_dead_lettered_alone() -> None:
    # Only another producer than the edge could write these; each must end as a dead letter,
    # never as an exception that stops the stage on the same record again and again.
    good = make_batch([ev.page_view(TENANT, SESSION)])
    odd = [
        {**make_batch([ev.page_view(TENANT, SESSION)]), "sent_at": "soon"},
        {**make_batch([ev.page_view(TENANT, SESSION)]), "received_at": "now"},
        {**make_batch([ev.page_view(TENANT, SESSION)]), "user_agent": 7},
    ]
    outcome = process_raw_record(orjson.dumps([*odd, good]), POLICY)
    assert ids(outcome.processed) == ids(process_batch(good, POLICY).processed)
    assert [letter["reason"] for letter in outcome.rejected] == ["malformed_raw_record"] * 3
    assert "soon" in str(outcome.rejected[0]["event"])


def test_rounds_by_bytes_keep_order_and_cover_every_record_once() -> None:
    sizes = [300, 300, 300, 900, 50, 2000, 10, 10]
    rounds = rounds_by_bytes(sizes, 1000)
    assert [list(r) for r in rounds] == [[0, 1, 2], [3, 4], [5], [6, 7]]
    for r in rounds:
        # A round stays within the bound unless one record alone is larger.
        assert sum(sizes[r.start : r.stop]) <= 1000 or len(r) == 1


def test_rounds_by_bytes_of_small_records_are_one_round_and_of_none_no_round() -> None:
    assert [list(r) for r in rounds_by_bytes([10] * 200, 1_048_576)] == [list(range(200))]
    assert rounds_by_bytes([], 1000) == []
