"""bench.validate_round_memory builds the raw records the edge writes under overload."""

from __future__ import annotations

import orjson

from bench.validate_round_memory import group_records


def test_each_record_is_a_group_of_raw_batches_as_the_edge_writes_it() -> None:
    records = group_records(3, 4)
    assert len(records) == 3
    for record in records:
        group = orjson.loads(record)
        assert isinstance(group, list) and len(group) == 4
        assert all({"api_key", "events", "received_at"} <= set(batch) for batch in group)
