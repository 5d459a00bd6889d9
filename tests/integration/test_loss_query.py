"""The loss query of ``GET /v1/query/loss`` on a real chDB store: a sender that numbers a
session's events from 0 (the schema takes any seq >= 0; the tracker starts at 1) loses nothing
when every number arrived. chDB runs in a child process (one store per process)."""

from __future__ import annotations

from pathlib import Path

from tests.support.chdb_child import run_chdb_script

SCRIPT = r"""
import json, sys, time, uuid
from datetime import UTC, datetime
from trackflow_app.store import EventStore
from web.read.events import LOSS_SQL

store = EventStore("chdb://" + sys.argv[1], "events")
store._ensure_schema()
client = store._connect()
now = datetime.fromtimestamp(time.time() - 60, UTC).strftime("%Y-%m-%d %H:%M:%S.000")
def row(session, seq):
    return {
        "event_id": str(uuid.uuid4()), "event_type": "click", "timestamp": now,
        "tenant_id": "t", "session_id": session, "user_id": None, "page_url": "https://a.example/",
        "referrer": None, "device_type": "desktop", "os": "Linux", "browser": "Firefox",
        "ip_address": None, "country": None, "region": None, "city": None, "properties": {},
        "received_at": now, "client_timestamp": now, "seq": seq, "user_agent": "ua",
        "inserted_at": now}
lines = [row("from-zero", n) for n in (0, 1, 2)]       # every number arrived
lines += [row("from-zero-gap", n) for n in (0, 1, 3)]  # 2 was lost
lines += [row("from-one-gap", n) for n in (1, 3)]      # 2 was lost (the tracker's numbering)
block = "\n".join(json.dumps(line) for line in lines).encode()
client.raw_insert("events", list(lines[0]), fmt="JSONEachRow", insert_block=block)
rows = store._query(LOSS_SQL.format(table="events"), {"tenant": "t", "hours": 1})
print(json.dumps(rows, default=str))
"""


def test_a_session_numbered_from_zero_is_not_a_negative_loss(tmp_path: Path) -> None:
    rows = run_chdb_script(SCRIPT, str(tmp_path / "store"))
    assert [(r["sessions"], int(r["received"]), int(r["lost"])) for r in rows] == [(3, 8, 2)]
