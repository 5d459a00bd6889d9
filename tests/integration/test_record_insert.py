"""The sink's insert in the real engine (chDB): a record that is no processed event fails the
insert with an error agents.insert_errors counts as the row's own (so the sink isolates and
dead-letters it), and the statement a ClickHouse server is sent parses."""

from __future__ import annotations

from pathlib import Path

from tests.support.chdb_child import run_chdb_script

SCRIPT = r"""
import json, sys
import orjson
from agents.insert_errors import error_code, is_row_error
from agents.validate import ValidationPolicy, process_batch
from schemas.ddl import INPUT_SOURCE, record_insert_sql
from tests.support import events as ev
from tests.unit.factories import make_batch
from trackflow_app.store import EventStore

store = EventStore("chdb://" + sys.argv[1])
store._ensure_schema()
client = store._connect()
outcome = process_batch(
    make_batch([ev.click("t", "s") for _ in range(3)], api_key="t"),
    ValidationPolicy(tenant_keys=frozenset({"t"})),
)
good = [orjson.dumps(e) for e in outcome.processed]
timeless = orjson.loads(good[0])
del timeless["client_timestamp"]
fractional = {**orjson.loads(good[0]), "timestamp": 1.5e12}
unknown_type = {**orjson.loads(good[0]), "event_type": "purchase"}
bad = {
    "an_unknown_event_type": orjson.dumps(unknown_type),
    "not_json": b"not json",
    "an_array": b"[1, 2]",
    "without_a_time": orjson.dumps(timeless),
    "a_fractional_time": orjson.dumps(fractional),
}
codes = {}
for name, record in bad.items():
    try:
        store._insert_records([good[1], record])
        codes[name] = None
    except Exception as exc:
        codes[name] = [error_code(exc), is_row_error(exc)]
store._insert_records(good)
stored = client.command("SELECT count() FROM events")
# chDB stores no rows from this form (a server reads them from the request's body), so only
# that the engine parses it is checked; a misspelt one fails with SYNTAX_ERROR (62).
server_form = record_insert_sql("events", INPUT_SOURCE)
client.command(server_form, data=good[2])
try:
    client.command(server_form.replace(" SELECT ", " SELEC ", 1), data=good[2])
    misspelt = None
except Exception as exc:
    misspelt = error_code(exc)
print(json.dumps({"codes": codes, "stored": stored, "misspelt": misspelt}))
"""


def test_records_that_are_no_processed_events_are_row_errors(tmp_path: Path) -> None:
    result = run_chdb_script(SCRIPT, str(tmp_path / "store"))
    assert result["codes"] == {
        "an_unknown_event_type": [691, True],
        "not_json": [27, True],
        "an_array": [27, True],
        "without_a_time": [395, True],
        "a_fractional_time": [27, True],
    }
    assert result["stored"] == 3  # the good record beside each bad one was not stored either
    assert result["misspelt"] == 62
