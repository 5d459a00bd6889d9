"""Stores made at earlier layouts reach a new store's layout through the numbered migrations
(schemas/migrations.py) at start-up, keeping their rows: real chDB, one store per child process.

The layouts are TrackFlow's own .sql files as they were (tests/fixtures/layouts/):
* seed_events.sql: the first events table (commit 245fb94): no computed columns, plain String
  dimensions, plain JSON, no deduplication window, a fixed one-year TTL, no rollup;
* rollup_*.sql: the layout that first had the session-hour rollup (commit 259cf4d): computed
  and low-cardinality columns, a rollup and view without is_bot, the rollup's fill recorded by
  name, still the one-year TTL, plain JSON and no deduplication window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemas.migrations import MIGRATIONS
from tests.support.chdb_child import run_chdb_script

LAYOUTS = Path(__file__).parent.parent / "fixtures" / "layouts"

SCRIPT = r"""
import json, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from schemas.migrations import MIGRATIONS, SchemaSettings
from trackflow_app.store import EventStore

path, layouts, made_as = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
store = EventStore("chdb://" + path, "events")
client = store._connect()

def statements(name, **names):
    sql = "\n".join(l for l in (layouts / name).read_text().splitlines() if not l.startswith("--"))
    for placeholder, value in names.items():
        sql = sql.replace("{" + placeholder + "}", value)
    return [s.strip() for s in sql.split(";") if s.strip()]

when = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:00:00.000")
def row(eid, kind, session, props, **extra):
    return json.dumps({
        "event_id": eid, "event_type": kind, "timestamp": when, "tenant_id": "t",
        "session_id": session, "user_id": None, "page_url": "https://a.example/",
        "referrer": "https://www.google.com/", "device_type": "desktop", "os": "Linux",
        "browser": "Firefox", "ip_address": None, "country": "DE", "region": None, "city": None,
        "properties": props, "received_at": when, "client_timestamp": when, "seq": 1,
        "user_agent": "ua", **extra}).encode()
OLD_ROWS = [
    row("00000000-0000-4000-8000-000000000001", "page_view", "s1", {}),
    row("00000000-0000-4000-8000-000000000002", "error", "s2",
        {"message": "boom", "source": "https://a.example/app.js", "line": 7}),
]
OLD_COLUMNS = [k for k in json.loads(OLD_ROWS[0]) if k != "is_bot"]

if made_as == "seed":
    [events] = statements("seed_events.sql", table="events")
    client.command(events)
elif made_as == "rollup":
    # As TrackFlow made it then: the tables, the record of the fill, the view filling the rollup.
    client.command(statements("rollup_events.sql", table="events")[0])
    select = ("SELECT DISTINCT tenant_id, toStartOfHour(timestamp) AS hour, device_type, os,"
              " browser, country, session_key, user_key FROM events")
    for statement in statements("rollup_session_hours.sql", table="events", select=select):
        client.command(statement)
    client.command("CREATE TABLE events_schema_steps (step String, done_at DateTime64(3, 'UTC')"
                   " DEFAULT now64(3)) ENGINE = MergeTree ORDER BY step")
    client.command("INSERT INTO events_schema_steps (step) VALUES ('fill session_hours')")
if made_as != "fresh":
    client.raw_insert("events", OLD_COLUMNS, insert_block=b"\n".join(OLD_ROWS), fmt="JSONEachRow")

store._ensure_schema()
store._ensure_schema()  # a second start changes nothing
# Each migration finds nothing left to do on the result (the fill aside: it moves rows).
layout = store._layout()
left = {m.name: m.statements("events", SchemaSettings(), layout) for m in MIGRATIONS
        if not m.moves_rows}
store._insert_json([row("00000000-0000-4000-8000-000000000003", "click", "s3", {}, is_bot=True)])

def rows(sql):
    return [list(r) for r in client.query(sql).result_rows]

TABLES = ("SELECT name, engine, partition_key, sorting_key, primary_key, engine_full, as_select,"
          " create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name")
tables = {}
for name, engine, partition, sorting, primary, full, select, create in rows(TABLES):
    columns = rows("SELECT name, type, default_kind, default_expression FROM system.columns"
                   f" WHERE database = currentDatabase() AND table = '{name}' ORDER BY position")
    tables[name] = {
        "columns": columns, "engine": engine, "partition_key": partition, "sorting_key": sorting,
        "primary_key": primary, "ttl_and_settings": full.partition(" TTL ")[2] or
        full.partition(" SETTINGS ")[2], "as_select": select, "create": create}
print(json.dumps({
    "tables": tables,
    "left": left,
    "steps": rows("SELECT step, count() FROM events_schema_steps GROUP BY step ORDER BY step"),
    "events": [dict(r) for r in client.query(
        "SELECT toString(event_id) AS id, session_id, page_url, os, country,"
        " toString(properties.message) AS message, is_bot, referrer_host,"
        " session_key = reinterpretAsUInt128(sipHash128(session_id)) AS keyed,"
        " error_fingerprint = cityHash64('boom', 'https://a.example/app.js', '7') AS fingerprinted"
        " FROM events FINAL ORDER BY event_id").named_results()],
    "rollup": rows("SELECT arraySort(groupArray(toString(is_bot))), uniqExact(session_key)"
                   " FROM (SELECT DISTINCT * FROM events_session_hours)")[0],
}))
"""


def start(tmp_path: Path, made_as: str) -> dict[str, Any]:
    found: dict[str, Any] = run_chdb_script(SCRIPT, str(tmp_path / made_as), str(LAYOUTS), made_as)
    return found


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return start(tmp_path_factory.mktemp("fresh"), "fresh")


def assert_started_as_a_new_store(found: dict[str, Any], fresh: dict[str, Any]) -> None:
    assert list(found["tables"]) == [
        "events",
        "events_schema_steps",
        "events_session_hours",
        "events_session_hours_mv",
    ]
    # Every migration is recorded, once; none finds anything left to do.
    assert found["steps"] == fresh["steps"] == sorted([m.name, 1] for m in MIGRATIONS)
    assert found["left"] == fresh["left"] == {m.name: [] for m in MIGRATIONS if not m.moves_rows}


def event(number: int, session: str, message: str = "", is_bot: bool = False) -> dict[str, Any]:
    """A stored event as the script reads it back."""
    return {
        "id": f"00000000-0000-4000-8000-00000000000{number}",
        "session_id": session,
        "page_url": "https://a.example/",
        "os": "Linux",
        "country": "DE",
        "message": message,
        "is_bot": is_bot,
        "referrer_host": "www.google.com",
        "keyed": 1,
        "fingerprinted": int(bool(message)),
    }


def test_a_new_store_is_made_at_todays_layout(fresh: dict[str, Any]) -> None:
    events = fresh["tables"]["events"]
    assert events["ttl_and_settings"] == (
        "timestamp + toIntervalDay(365)"
        " SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000,"
        " merge_selector_base = 10, vertical_merge_algorithm_min_rows_to_activate = 1,"
        " vertical_merge_algorithm_min_columns_to_activate = 1,"
        " min_compress_block_size = 16384, max_compress_block_size = 131072"
    )
    assert fresh["events"] == [event(3, "s3", is_bot=True)]
    assert fresh["rollup"] == [["true"], 1]


def test_a_store_of_the_first_layout_becomes_a_new_one(
    tmp_path: Path, fresh: dict[str, Any]
) -> None:
    found = start(tmp_path, "seed")
    assert_started_as_a_new_store(found, fresh)
    # The same columns in the same order, types, keys, TTL, settings and view: the same table.
    for name, table in fresh["tables"].items():
        assert found["tables"][name] == table, name
    # The old rows read as before, the columns they did not have computed or defaulted; the
    # rollup was filled with their sessions, then the view added the new one.
    assert found["events"] == [event(1, "s1"), event(2, "s2", "boom"), *fresh["events"]]
    assert found["rollup"] == [["false", "false", "true"], 3]


def test_a_store_of_the_first_rollup_layout_becomes_a_new_one(
    tmp_path: Path, fresh: dict[str, Any]
) -> None:
    found = start(tmp_path, "rollup")
    assert_started_as_a_new_store(found, fresh)
    assert ["fill session_hours", 1] in found["steps"]  # recorded then, not redone
    for name, table in fresh["tables"].items():
        if name != "events_session_hours":
            assert found["tables"][name] == table, name
    # The rollup made before is_bot: the same columns, sorting key, TTL and settings; only its
    # primary key, which no ALTER can extend, stays the key it was made with.
    rollup, new = found["tables"]["events_session_hours"], fresh["tables"]["events_session_hours"]
    assert {k: v for k, v in rollup.items() if k not in ("primary_key", "create")} == {
        k: v for k, v in new.items() if k not in ("primary_key", "create")
    }
    assert new["primary_key"] == new["sorting_key"]
    assert rollup["primary_key"] == new["sorting_key"].removesuffix(", is_bot")
    assert found["events"] == [event(1, "s1"), event(2, "s2", "boom"), *fresh["events"]]
    # Filled by the view then (is_bot false since), and by the view with is_bot now.
    assert found["rollup"] == [["false", "false", "true"], 3]
