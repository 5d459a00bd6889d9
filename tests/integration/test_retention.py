"""TRACKFLOW_RETENTION_DAYS is the TTL of the events table and of the session-hour rollup, also
on a store made with another value: real chDB, in a child process (one store per process)."""

from __future__ import annotations

from pathlib import Path

from tests.support.chdb_child import run_chdb_script

SCRIPT = r"""
import json, sys
from schemas.migrations import retention_ttl_ddl
from trackflow_app.store import EventStore

path, made_with = sys.argv[1], sys.argv[2]
TTLS = ("SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"
        " AND name IN ('events', 'events_session_hours') ORDER BY name")

def ttls(client):
    return {name: engine.split(" TTL ", 1)[1].split(" SETTINGS ")[0]
            for name, engine in client.query(TTLS).result_rows}

first = EventStore("chdb://" + path, "events", retention_days=365)
client = first._connect()
if made_with == "fixed-year":  # as an earlier TrackFlow made it
    client.command("CREATE TABLE events (event_id UUID, timestamp DateTime64(3, 'UTC'))"
                   " ENGINE = ReplacingMergeTree ORDER BY event_id"
                   " TTL timestamp + INTERVAL 1 YEAR")
    client.command("CREATE TABLE events_session_hours (hour DateTime('UTC'))"
                   " ENGINE = ReplacingMergeTree ORDER BY hour"
                   " TTL hour + INTERVAL 1 YEAR + INTERVAL 1 HOUR")
    before = ttls(client)
    first._close()
    reopened = EventStore("chdb://" + path, "events", retention_days=365)
    reopened._connect()
    # Only the retention step: these bare tables lack the columns the other steps need.
    for statement in retention_ttl_ddl("events", 365, reopened._engines()):
        reopened._connect().command(statement)
    print(json.dumps({"before": before, "after": ttls(reopened._connect())}))
    raise SystemExit
first._ensure_schema()
row = {"event_id": "00000000-0000-4000-8000-000000000001", "event_type": "page_view",
       "timestamp": "", "tenant_id": "t", "session_id": "s", "user_id": None,
       "page_url": "https://a.example/", "referrer": None, "device_type": "desktop",
       "os": "Linux", "browser": "Firefox", "ip_address": None, "country": None, "region": None,
       "city": None, "properties": {}, "received_at": "", "client_timestamp": "", "seq": 1,
       "user_agent": "ua"}
lines = []
for i, days_old in enumerate((100, 1)):
    when = client.query(f"SELECT toString(now64(3) - toIntervalDay({days_old}))").result_rows[0][0]
    event = {**row, "event_id": f"00000000-0000-4000-8000-00000000000{i}",
             "timestamp": when, "received_at": when, "client_timestamp": when}
    lines.append(json.dumps(event).encode())
first._insert_json(lines)
before = ttls(client)
first._close()

second = EventStore("chdb://" + path, "events", retention_days=30)
second._ensure_schema()
second._ensure_schema()  # a second start with the same setting changes nothing
client = second._connect()
after = ttls(client)
client.command("OPTIMIZE TABLE events FINAL")
client.command("OPTIMIZE TABLE events_session_hours FINAL")
kept = client.query("SELECT dateDiff('day', timestamp, now64(3)) FROM events").result_rows
hours = client.query("SELECT count() FROM events_session_hours").result_rows[0][0]
print(json.dumps({"before": before, "after": after, "kept_days_old": [r[0] for r in kept],
                  "rollup_rows": hours}))
"""


def test_retention_setting_changes_the_ttl_of_an_existing_store(tmp_path: Path) -> None:
    found = run_chdb_script(SCRIPT, str(tmp_path / "store"), "365")
    assert found["before"] == {
        "events": "timestamp + toIntervalDay(365)",
        "events_session_hours": "(hour + toIntervalDay(365)) + toIntervalHour(1)",
    }
    assert found["after"] == {
        "events": "timestamp + toIntervalDay(30)",
        "events_session_hours": "(hour + toIntervalDay(30)) + toIntervalHour(1)",
    }
    # The 100-day-old event is past the new retention and goes; yesterday's stays (in the
    # rollup too: one session-hour row).
    assert found["kept_days_old"] == [1]
    assert found["rollup_rows"] == 1


def test_store_with_a_fixed_year_ttl_takes_the_setting(tmp_path: Path) -> None:
    found = run_chdb_script(SCRIPT, str(tmp_path / "store"), "fixed-year")
    assert found["before"] == {
        "events": "timestamp + toIntervalYear(1)",
        "events_session_hours": "(hour + toIntervalYear(1)) + toIntervalHour(1)",
    }
    assert found["after"] == {
        "events": "timestamp + toIntervalDay(365)",
        "events_session_hours": "(hour + toIntervalDay(365)) + toIntervalHour(1)",
    }
