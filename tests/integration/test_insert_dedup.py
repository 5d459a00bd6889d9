"""An insert repeated with the same deduplication token is stored once, by the store itself
(real chDB, the events table as TrackFlow makes it, processed records inserted as the sink
inserts them), and a table made before the token existed gets the deduplication window at
start-up."""

from __future__ import annotations

from pathlib import Path

from tests.support.chdb_child import run_chdb_script

SCRIPT = r"""
import json, sys, time
import orjson
from agents.validate import ValidationPolicy, process_batch
from tests.support import events as ev
from tests.unit.factories import make_batch
from trackflow_app.store import EventStore

store = EventStore("chdb://" + sys.argv[1])
store._ensure_schema()
client = store._connect()
policy = ValidationPolicy(tenant_keys=frozenset({"t"}))
def records(n):
    events = [ev.click("t", "s") for _ in range(n)]
    outcome = process_batch(make_batch(events, api_key="t"), policy)
    return [orjson.dumps(e) for e in outcome.processed]
batch = records(50)
store._insert_records(batch, "processed/0:0-49@1")
store._insert_records(batch, "processed/0:0-49@1")          # the same records again
store._insert_records(records(5), "processed/0:50-54@2")    # new records, new token
store._insert_records(batch, "")                            # no token: stored again
physical = client.command("SELECT count() FROM events")
print(json.dumps({"physical": physical}))
"""


def test_same_token_is_stored_once(tmp_path: Path) -> None:
    result = run_chdb_script(SCRIPT, str(tmp_path / "store"))
    assert result["physical"] == 50 + 5 + 50
