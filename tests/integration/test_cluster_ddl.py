"""The cluster schema (TRACKFLOW_CLICKHOUSE_CLUSTER) against the real engine, as far as an
embedded one goes.

chDB cannot run ON CLUSTER (it has no distributed DDL queue) and keeps Replicated tables
read-only (no replication threads), and no ClickHouse server can be installed here. So, in a
child process with a one-shard cluster, an in-memory test keeper and the {shard}/{replica}
macros configured:

* every cluster statement is parsed by the engine (formatQuery), ON CLUSTER included;
* every statement is created for real without its ON CLUSTER clause: the Replicated engines with
  their keeper paths and macros, the Distributed tables and their sharding keys, the view;
* the write and read path (the sink's insert through the Distributed table, the view on the
  local tables, FINAL and distinct counts through the Distributed tables) runs on the same
  statements with the Replicated engines made plain, since Replicated tables refuse writes here;
* the single-node statements run as the store runs them, with the same rows.
"""

from __future__ import annotations

from typing import Any

import pytest

from schemas.ddl import cluster_schema_ddl
from tests.support.chdb_child import run_chdb_script

CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <macros><shard>01</shard><replica>node-a</replica></macros>
  <remote_servers>
    <tf><shard><internal_replication>true</internal_replication>
      <replica><host>localhost</host><port>9000</port></replica>
    </shard></tf>
  </remote_servers>
</clickhouse>
"""

SCRIPT = r"""
import json, os, re, sys, time
import chdb
import orjson
from agents.validate import process_batch
from schemas.ddl import cluster_schema_ddl, events_table_ddl, record_insert_sql, schema_steps_ddl
from schemas.ddl import session_hours_ddl
from tests.support import events as ev
from tests.unit.factories import SESSION, TENANT, make_batch, policy

conn = chdb.connect(":memory:?config-file=" + sys.argv[1])
cur = conn.cursor()

def run(sql):
    cur.execute(sql)
    return [list(row) for row in cur.fetchall()]

def literal(sql):
    return "'" + sql.replace("\\", "\\\\").replace("'", "\\'") + "'"

def local(statement):
    return statement.replace(" ON CLUSTER tf", "")

def plain(statement):
    return re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'\)", r"\1", local(statement))

now = int(time.time() * 1000)
events = ev.seed_examples(TENANT, SESSION)
for offset, event in enumerate(events):
    event["timestamp"] = now - 1000 + offset
outcome = process_batch(make_batch(events, received_at=now, sent_at=now), policy(), None)
records = [orjson.dumps(event) for event in outcome.processed]

def insert_twice(table, settings=None):
    # The sink's insert of processed records (read from a file, as the embedded store does).
    # The second time is a redelivery of the same events in another batch (reversed, so the
    # store's deduplication of identical inserts does not drop it): FINAL must collapse it.
    for number, block in enumerate((records, records[::-1])):
        path = os.path.join(os.path.dirname(sys.argv[1]), f"{table}-{number}.jsonl")
        with open(path, "wb") as file:
            file.write(b"\n".join(block))
        run(record_insert_sql(table, path, settings))

def counts(database):
    return {
        "physical": run(f"SELECT count() FROM {database}.events_local")[0][0]
        if database != "single" else run("SELECT count() FROM single.events")[0][0],
        "final": run(f"SELECT count() FROM {database}.events FINAL")[0][0],
        "event_ids": run(f"SELECT uniqExact(event_id) FROM {database}.events")[0][0],
        "rollup_sessions": run(
            f"SELECT uniqExact(session_key) FROM {database}.events_session_hours"
        )[0][0],
        "materialized": run(
            f"SELECT count() FROM {database}.events FINAL"
            " WHERE session_key = reinterpretAsUInt128(sipHash128(session_id))"
        )[0][0],
    }

out = {"events": len(outcome.processed)}
statements = cluster_schema_ddl("replicated.events", "tf", "unused")
out["formatted"] = [run(f"SELECT formatQuery({literal(s)})")[0][0] for s in statements]

for database in ("replicated", "plain", "single"):
    run(f"CREATE DATABASE {database}")
for statement in statements:
    run(local(statement))
out["tables"] = run(
    "SELECT name, engine, engine_full FROM system.tables WHERE database = 'replicated'"
    " ORDER BY name"
)
out["replicas"] = run(
    "SELECT table, zookeeper_path, replica_name FROM system.replicas"
    " WHERE database = 'replicated' ORDER BY table"
)

for statement in cluster_schema_ddl("plain.events", "tf", "unused"):
    run(plain(statement))
insert_twice("plain.events", {"insert_distributed_sync": "1"})
out["plain"] = counts("plain")

for statement in [
    events_table_ddl("single.events"),
    *session_hours_ddl("single.events"),
    schema_steps_ddl("single.events"),
]:
    run(statement)
insert_twice("single.events")
out["single"] = counts("single")

print(json.dumps(out), flush=True)
os._exit(0)  # chDB with a test keeper can abort while tearing down; everything is checked
"""


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = tmp_path_factory.mktemp("cluster") / "cluster.xml"
    config.write_text(CONFIG, encoding="utf-8")
    found: dict[str, Any] = run_chdb_script(SCRIPT, str(config), timeout=120)
    return found


def test_cluster_schema_on_the_engine(state: dict[str, Any]) -> None:
    statements = cluster_schema_ddl("replicated.events", "tf", "unused")

    # Parsed by the engine, ON CLUSTER and all: one formatted statement for each.
    formatted = state["formatted"]
    assert len(formatted) == len(statements) == 6
    for text in formatted:
        assert " ON CLUSTER tf" in text, text[:120]

    # Created for real (less ON CLUSTER): every table with the engine it should have.
    engines = {name: engine for name, engine, _ in state["tables"]}
    assert engines == {
        "events_local": "ReplicatedReplacingMergeTree",
        "events": "Distributed",
        "events_session_hours_local": "ReplicatedReplacingMergeTree",
        "events_session_hours": "Distributed",
        "events_session_hours_mv": "MaterializedView",
        "events_schema_steps": "ReplicatedMergeTree",
    }
    full = {name: text for name, _, text in state["tables"]}
    assert full["events"].startswith(
        "Distributed('tf', 'replicated', 'events_local', cityHash64(tenant_id, session_id))"
    )
    # The macros were expanded: per shard for the data, one log for every node for the steps.
    assert state["replicas"] == [
        ["events_local", "/clickhouse/tables/01/replicated/events_local", "node-a"],
        [
            "events_schema_steps",
            "/clickhouse/tables/all/replicated/events_schema_steps",
            "01-node-a",
        ],
        [
            "events_session_hours_local",
            "/clickhouse/tables/01/replicated/events_session_hours_local",
            "node-a",
        ],
    ]


def test_cluster_write_and_read_path_matches_the_single_node(state: dict[str, Any]) -> None:
    events = state["events"]
    assert events == 5
    expected = {
        "physical": 2 * events,  # the redelivery is stored, then collapsed by FINAL
        "final": events,
        "event_ids": events,
        "rollup_sessions": 1,  # the view on the local table filled the rollup
        "materialized": events,  # the local table computed its columns on the forwarded rows
    }
    assert state["plain"] == expected
    assert state["single"] == expected


STORE_SETTING = r"""
import json, sys
from trackflow_app.store import EventStore

store = EventStore("chdb://" + sys.argv[1], "events", cluster=sys.argv[2])
[[value]] = store._connect().query(
    "SELECT getSetting('insert_distributed_sync')"
).result_rows
print(json.dumps({"insert_distributed_sync": str(value).lower()}))
"""


@pytest.mark.parametrize(("cluster", "expected"), [("tf", "true"), ("", "false")])
def test_store_client_waits_for_every_shard_on_a_cluster_only(
    tmp_path_factory: pytest.TempPathFactory, cluster: str, expected: str
) -> None:
    # The sink commits Kafka offsets after the insert returns: on a cluster that must mean
    # every shard has the rows, not that they are queued on the node that took the insert.
    store = tmp_path_factory.mktemp("store") / "store"
    state = run_chdb_script(STORE_SETTING, str(store), cluster, timeout=120)
    assert state == {"insert_distributed_sync": expected}
