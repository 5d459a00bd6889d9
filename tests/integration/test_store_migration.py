"""A store made before the computed columns, the LowCardinality columns and the session-hour
rollup existed is brought up to date at start-up, with the same values a new table computes on
insert. chDB runs in a child process (one store per process)."""

from __future__ import annotations

from pathlib import Path

from schemas.migrations import MIGRATIONS
from tests.support.chdb_child import run_chdb_script
from tests.unit.test_ddl import COMPUTED

SCRIPT = r"""
import json, sys
from schemas.ddl import EVENT_COLUMNS, events_table_ddl
from trackflow_app.store import EventStore
from web.read import params, sql

old_ddl = "\n".join(l for l in events_table_ddl("events").splitlines()
                    if " MATERIALIZED " not in l and "is_bot" not in l)
old_ddl = old_ddl.replace("LowCardinality(Nullable(String))", "Nullable(String)")
old_ddl = old_ddl.replace("LowCardinality(String)", "String")
assert "LowCardinality" not in old_ddl
old_ddl = old_ddl.replace("JSON(max_dynamic_paths=64, max_dynamic_types=8)", "JSON")
old_ddl = old_ddl.replace(", non_replicated_deduplication_window = 1000", "")
assert "max_dynamic_paths" not in old_ddl and "deduplication" not in old_ddl
store = EventStore("chdb://" + sys.argv[1], "events")
client = store._connect()
client.command(old_ddl)
OLD_COLUMNS = [c for c in EVENT_COLUMNS if c != "is_bot"]
def row(eid, kind, session, user, props, referrer=None):
    return json.dumps({
        "event_id": eid, "event_type": kind, "timestamp": "2026-01-01 10:00:00.000",
        "tenant_id": "t", "session_id": session, "user_id": user, "page_url": "https://a.example/",
        "referrer": referrer, "device_type": "desktop", "os": "Linux", "browser": "Firefox",
        "ip_address": None, "country": None, "region": None, "city": None, "properties": props,
        "received_at": "2026-01-01 10:00:00.000", "client_timestamp": "2026-01-01 10:00:00.000",
        "seq": 1, "user_agent": "ua"}).encode()
client.raw_insert("events", OLD_COLUMNS, fmt="JSONEachRow", insert_block=b"\n".join([
    row("00000000-0000-4000-8000-000000000001", "page_view", "s1", "u1", {},
        "https://www.google.com/search?q=a"),
    row("00000000-0000-4000-8000-000000000002", "page_view", "s2", None, {},
        "https://a.example/pricing"),
    row("00000000-0000-4000-8000-000000000004", "performance", "s2", None,
        {"loadTime": 1250, "domContentLoaded": 600}),
    row("00000000-0000-4000-8000-000000000003", "error", "s2", None,
        {"message": "boom", "source": "https://a.example/app.js", "line": 7}),
]))
COLUMNS = ("SELECT name, type FROM system.columns"
           " WHERE database = currentDatabase() AND table = 'events' ORDER BY position")
before = client.query(COLUMNS).result_rows
store._ensure_schema()
store._ensure_schema()  # idempotent
after = client.query(COLUMNS).result_rows
ROLLUP = ("SELECT arrayStringConcat(arraySort(groupArray(concat(toString(hour), ' ', os, ' ',"
          " arrayFirst(s -> session_key = reinterpretAsUInt128(sipHash128(s)),"
          "            ['s1', 's2', 's3', '?'])))), ',')"
          " FROM (SELECT DISTINCT * FROM events_session_hours)")
rollup_filled = client.query(ROLLUP).result_rows[0][0]
steps = client.query("SELECT groupArray(step) FROM events_schema_steps").result_rows[0][0]
keys = client.query(
    "SELECT countIf(session_key = reinterpretAsUInt128(sipHash128(session_id))),"
    " countIf(user_key IS NULL), uniqExact(session_key), uniqExact(user_key),"
    " lower(leftPad(hex(maxIf(error_fingerprint, event_type = 'error')), 16, '0')),"
    " countIf(error_fingerprint = 0),"
    " lower(leftPad(hex(cityHash64('boom', 'https://a.example/app.js', '7')), 16, '0'))"
    " FROM events").result_rows[0]
other = client.query(
    "SELECT arrayStringConcat(groupArray(concat(referrer_host, ':', toString(internal))), ','),"
    " max(load_time), max(dom_content_loaded)"
    " FROM (SELECT referrer_host, referrer_internal AS internal, load_time, dom_content_loaded"
    "       FROM events ORDER BY event_id)").result_rows[0]
day = [("from", "2026-01-01T00:00:00Z"), ("to", "2026-01-02T00:00:00Z")]
request = params.parse_request("errors", "t", day, 0)
errors = store.query_sync(*sql.errors_query("events", request))
groups = [{k: e[k] for k in ("fingerprint", "occurrences", "sessions")} for e in errors]
# After the migration the view keeps the rollup up to date.
new_row = json.loads(row("00000000-0000-4000-8000-000000000005", "click", "s3", None, {}))
store._insert_json([json.dumps({**new_row, "is_bot": False}).encode()])
rollup_after_insert = client.query(ROLLUP).result_rows[0][0]
create = client.command("SELECT create_table_query FROM system.tables WHERE name = 'events'"
                        " AND database = currentDatabase()")
print(json.dumps({"dedup_window_set": "non_replicated_deduplication_window = 1000" in create,
                  "before": before, "after": after, "keys": list(keys), "errors": groups,
                  "other": list(other), "rollup": [rollup_filled, rollup_after_insert],
                  "steps": steps}))
"""


def test_an_older_store_gains_the_computed_columns(tmp_path: Path) -> None:
    result = run_chdb_script(SCRIPT, str(tmp_path / "store"))
    computed = ["is_bot", *COMPUTED]  # in events.sql's order
    assert len(computed) == 8  # is_bot and the seven computed columns
    before = dict(result["before"])
    after = dict(result["after"])
    assert not set(computed) & set(before)
    assert list(after) == list(before) + computed
    converted = {name: kind for name, kind in after.items() if before.get(name, kind) != kind}
    assert converted == {
        "page_url": "LowCardinality(String)",
        "device_type": "LowCardinality(String)",
        "os": "LowCardinality(String)",
        "browser": "LowCardinality(String)",
        "country": "LowCardinality(Nullable(String))",
        "properties": "JSON(max_dynamic_types=8, max_dynamic_paths=64)",
    }
    assert result["dedup_window_set"]
    # The rollup is filled once from the stored events (two sessions), then by the view.
    filled, after_insert = result["rollup"]
    assert filled == "2026-01-01 10:00:00 Linux s1,2026-01-01 10:00:00 Linux s2"
    assert after_insert == filled + ",2026-01-01 10:00:00 Linux s3"
    assert sorted(result["steps"]) == sorted(m.name for m in MIGRATIONS)  # each done once
    matching, null_users, sessions, users, fingerprint, not_errors, expected = result["keys"]
    assert (matching, null_users, sessions, users, not_errors) == (4, 3, 2, 1, 3)
    assert fingerprint == expected
    assert result["errors"] == [{"fingerprint": expected, "occurrences": 1, "sessions": 1}]
    hosts, load_time, dom_content_loaded = result["other"]
    assert hosts == "www.google.com:0,a.example:1,:0,:0"
    assert (load_time, dom_content_loaded) == (1250.0, 600.0)


# A store of the TrackFlow before bot flagging: events without is_bot, a filled rollup (and its
# view) without it. After start-up the column is there (false for the rows already stored), the
# rollup has it last in its key, the view fills it, and the read API leaves bots out by default.
BOT_SCRIPT = r"""
import json, sys
from schemas.ddl import EVENT_COLUMNS, events_table_ddl, schema_steps_ddl, session_hours_ddl
from schemas.migrations import FILL_SESSION_HOURS
from trackflow_app.store import EventStore
from web.read import params, sql

def without_bot(sql):
    return sql.replace(",\n    is_bot Bool", "").replace(", is_bot", "")
store = EventStore("chdb://" + sys.argv[1], "events")
client = store._connect()
old_events = "\n".join(l for l in events_table_ddl("events").splitlines() if "is_bot" not in l)
client.command(old_events)
for statement in session_hours_ddl("events"):
    assert "is_bot" in statement
    client.command(without_bot(statement))
client.command(schema_steps_ddl("events"))
client.command(f"INSERT INTO events_schema_steps (step) VALUES ('{FILL_SESSION_HOURS}')")
def row(eid, session, **extra):
    return json.dumps({
        "event_id": eid, "event_type": "page_view", "timestamp": "2026-01-01 10:00:00.000",
        "tenant_id": "t", "session_id": session, "user_id": None,
        "page_url": "https://a.example/", "referrer": None, "device_type": "desktop",
        "os": "Linux", "browser": "Chrome", "ip_address": None, "country": None, "region": None,
        "city": None, "properties": {}, "received_at": "2026-01-01 10:00:00.000",
        "client_timestamp": "2026-01-01 10:00:00.000", "seq": 1, "user_agent": "ua",
        **extra}).encode()
old_columns = [c for c in EVENT_COLUMNS if c != "is_bot"]
client.raw_insert("events", old_columns, insert_block=row(
    "00000000-0000-4000-8000-000000000001", "s-old"), fmt="JSONEachRow")
store._ensure_schema()
store._ensure_schema()  # idempotent
store._insert_json([
    row("00000000-0000-4000-8000-000000000002", "s-bot", is_bot=True),
    row("00000000-0000-4000-8000-000000000003", "s-new", is_bot=False),
])
def one(sql):
    return client.query(sql).result_rows[0][0]
NAMES = ("arrayFirst(s -> session_key = reinterpretAsUInt128(sipHash128(s)),"
         " ['s-old', 's-bot', 's-new'])")
day = [("from", "2026-01-01T00:00:00Z"), ("to", "2026-01-02T00:00:00Z"), ("interval", "hour")]
stats = {}
for flag in ("0", "1"):
    request = params.parse_request("traffic", "t", [*day, ("include_bots", flag)], 0)
    assert sql.uses_session_hours(request)
    [traffic] = store.query_sync(*sql.traffic_query("events", request))
    stats[flag] = [traffic["page_views"], traffic["sessions"]]
print(json.dumps({
    "events": one("SELECT arrayStringConcat(arraySort(groupArray(concat(session_id, ':',"
                  " toString(is_bot)))), ',') FROM events"),
    "rollup": one(f"SELECT arrayStringConcat(arraySort(groupArray(concat({NAMES}, ':',"
                  " toString(is_bot)))), ',') FROM (SELECT DISTINCT * FROM events_session_hours)"),
    "sorting_key": one("SELECT sorting_key FROM system.tables"
                       " WHERE database = currentDatabase() AND name = 'events_session_hours'"),
    "stats": stats,
}))
"""


def test_an_older_store_and_rollup_gain_the_bot_flag(tmp_path: Path) -> None:
    result = run_chdb_script(BOT_SCRIPT, str(tmp_path / "store"))
    assert result["events"] == "s-bot:true,s-new:false,s-old:false"
    assert result["rollup"] == "s-bot:true,s-new:false,s-old:false"
    assert result["sorting_key"].endswith("session_key, user_key, is_bot")
    # Read from the rollup (whole hours): the bot's session and page view count only when asked.
    assert result["stats"] == {"0": [2, 2], "1": [3, 3]}
