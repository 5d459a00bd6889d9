"""Validated means storable: arbitrary events through validate -> a real chDB insert.

Each batch is stored twice: as the sink does (the processed records, mapped by the insert's
SELECT) and as rows mapped in Python (agents.rows.to_json_row) into a copy of the table; the two
tables must then hold the same rows.

    python -m tests.support.storable_check STORE_PATH EXAMPLES

Runs in its own process (chDB allows one store per process) and prints one JSON line: how many
events were generated, accepted and stored, and the first failure hypothesis found, if any.
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents.rows import to_json_row
from agents.validate import ValidationPolicy, process_batch
from schemas.ddl import EVENT_COLUMNS, events_table_ddl
from tests.support.strategies import json_values
from tests.unit.factories import BUILDERS, SESSION, TENANT, make_batch
from trackflow_app.store import EventStore

POLICY = ValidationPolicy(tenant_keys=frozenset({TENANT}))
RECEIVED = int(time.time() * 1000)
EXTREME_TIMES = [0, 1, 5000, 1e11, 1e13, 2e19, 2.0**63, 2.0**64, 10_413_791_999_999, -1]

times = (
    st.sampled_from(EXTREME_TIMES)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=RECEIVED - 400 * 86_400_000, max_value=RECEIVED + 2 * 86_400_000)
)
edge_integers = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, -(2**63), 0, -1])
keys = st.text(max_size=12) | st.sampled_from(["a.b", "", " ", "x" * 200, "élan", "0", "a-b"])
leaves = json_values | edge_integers | st.text(max_size=3000)
nested = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)
texts = st.text(max_size=300) | st.sampled_from(["", "\x00\x1f", "a" * 5000, "😀", "\u2028"])


@st.composite
def events(draw: st.DrawFn) -> Any:
    event: dict[str, Any] = BUILDERS[draw(st.sampled_from(sorted(BUILDERS)))](TENANT, SESSION)
    if draw(st.booleans()):
        event["timestamp"] = draw(times)
    for field in ("sessionId", "userId", "pageUrl", "referrer"):
        if draw(st.integers(0, 4)) == 0:
            event[field] = draw(texts)
    if draw(st.integers(0, 4)) == 0:
        event["deviceInfo"] = {k: draw(texts) for k in ("deviceType", "os", "browser")}
    if draw(st.booleans()) and isinstance(event.get("properties"), dict):
        extra = draw(st.dictionaries(keys, nested, max_size=8))
        event["properties"] = {**extra, **event["properties"]}
    if draw(st.integers(0, 5)) == 0:
        event["seq"] = draw(st.integers(min_value=0, max_value=2**32 - 1))
    # A JSON round trip: what the worker sees is what orjson read from the request.
    return orjson.loads(orjson.dumps(event))


def main(store_path: str, examples: int) -> None:
    store = EventStore(f"chdb://{store_path}")
    store._ensure_schema()
    client = store._connect()
    assert "JSON(max_dynamic_paths" in events_table_ddl()
    counts = {"generated": 0, "accepted": 0, "stored": 0, "near_1970": 0, "differing_rows": -1}
    client.command("CREATE TABLE python_rows AS events")

    @settings(
        max_examples=examples,
        database=None,
        derandomize=True,  # the same examples every run: the non-vacuity floor cannot flake
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(events(), min_size=1, max_size=8), st.none() | times)
    # A device whose clock reset: always checked, whatever the random examples hold.
    @example([{**BUILDERS["click"](TENANT, SESSION), "timestamp": 5000}], 5000)
    def check(batch_events: list[Any], sent_at: Any) -> None:
        batch = make_batch(batch_events, received_at=RECEIVED, sent_at=sent_at)
        if isinstance(sent_at, int) and not isinstance(sent_at, bool) and sent_at <= 0:
            batch["sent_at"] = None  # the edge's envelope model takes only sentAt > 0
        outcome = process_batch(batch, POLICY)
        records = [orjson.dumps(event) for event in outcome.processed]
        rows = [to_json_row(event) for event in outcome.processed]
        before = client.command("SELECT count() FROM events")
        if rows:
            store._insert_records(records)
            client.raw_insert("python_rows", EVENT_COLUMNS, b"\n".join(rows), fmt="JSONEachRow")
        after = client.command("SELECT count() FROM events")
        assert after - before == len(rows), (before, after, len(rows))
        counts["generated"] += len(batch_events)
        counts["accepted"] += len(rows)
        counts["stored"] += after - before
        counts["near_1970"] += sum(
            1 for event in outcome.processed if 0 <= event["client_timestamp"] < 10**11
        )

    failure = None
    try:
        check()
        texts = ", ".join(f"toString({name})" for name in EVENT_COLUMNS)
        counts["differing_rows"] = client.command(
            f"SELECT count() FROM (SELECT {texts} FROM events"
            f" EXCEPT ALL SELECT {texts} FROM python_rows)"
        ) + client.command(
            f"SELECT count() FROM (SELECT {texts} FROM python_rows"
            f" EXCEPT ALL SELECT {texts} FROM events)"
        )
    except Exception:
        failure = traceback.format_exc()[-4000:]
    print(orjson.dumps({**counts, "failure": failure}).decode())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
