"""The read API's health query on a real chDB store: an event stored twice, in two different
minutes (a re-delivery), is one event. chDB runs in a child process (one store per process)."""

from __future__ import annotations

from pathlib import Path

from tests.support.chdb_child import run_chdb_script

SCRIPT = r"""
import json, sys
from trackflow_app.store import EventStore
from web.read import params, shape, sql

store = EventStore("chdb://" + sys.argv[1], "events")
store._ensure_schema()
client = store._connect()
def row(eid, inserted_at):
    return {
        "event_id": eid, "event_type": "page_view", "timestamp": "2026-01-01 10:00:00.000",
        "tenant_id": "t", "session_id": "s1", "user_id": None, "page_url": "https://a.example/",
        "referrer": None, "device_type": "desktop", "os": "Linux", "browser": "Firefox",
        "ip_address": None, "country": None, "region": None, "city": None, "properties": {},
        "received_at": "2026-01-01 10:00:00.000", "client_timestamp": "2026-01-01 10:00:00.000",
        "seq": 1, "user_agent": "ua", "inserted_at": inserted_at}
once, twice = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
lines = [row(twice, "2026-01-01 10:00:59.900"), row(once, "2026-01-01 10:01:00.100"),
         row(twice, "2026-01-01 10:01:00.200")]
for line in lines:  # one insert each, as separate deliveries are
    block = json.dumps(line).encode()
    client.raw_insert("events", list(line), fmt="JSONEachRow", insert_block=block)
request = params.parse_request("health", "t", [("minutes", "5")], now_ms=1767261840000)
query = sql.health_query("events", request)
rows = store._query(query.sql, query.parameters)
body = shape.shape_health(request, rows, {})
print(json.dumps({"rows": rows, "body": body}, default=str))
"""


def test_an_event_stored_in_two_minutes_counts_once(tmp_path: Path) -> None:
    result = run_chdb_script(SCRIPT, str(tmp_path / "store"))
    tenant = result["body"]["tenant"]
    # Two events, three stored rows: the repeat counts in the minute of its first insert.
    assert tenant["events"] == 2
    per_minute = {p["t"]: p["events"] for p in tenant["events_per_minute"] if p["events"]}
    assert per_minute == {1767261600000: 1, 1767261660000: 1}
    assert sum(int(r["stored_rows"]) for r in result["rows"]) == 3
