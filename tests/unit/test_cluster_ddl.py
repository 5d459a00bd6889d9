"""schemas.ddl's cluster schema (TRACKFLOW_CLICKHOUSE_CLUSTER) and the statements the store runs
with it. The engine parses and creates them in tests/integration/test_cluster_ddl.py."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.ddl import (
    cluster_schema_ddl,
    events_table_ddl,
    on_cluster,
    replicated,
    schema_steps_ddl,
    session_hours_ddl,
)
from schemas.migrations import FILL_SESSION_HOURS, MIGRATIONS, Layout, SchemaSettings
from tests.support.env import clear_trackflow_env
from trackflow_app.settings import Settings
from trackflow_app.store import EventStore

STATEMENTS = cluster_schema_ddl("events", "analytics_cluster", "trackflow")
[FILL] = next(m for m in MIGRATIONS if m.name == FILL_SESSION_HOURS).statements(
    "events", SchemaSettings(), Layout()
)


def body(statement: str) -> str:
    """A CREATE statement from its column list on, without the engine line."""
    columns = statement[statement.index("(") :]
    return re.sub(r"ENGINE = \w+(\('[^']*', '[^']*'\)|\(\))?", "ENGINE", columns)


def test_every_statement_runs_on_the_cluster() -> None:
    assert len(STATEMENTS) == 6
    for statement in STATEMENTS:
        assert re.match(
            r"^CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS \w+ ON CLUSTER analytics_cluster ",
            statement,
        ), statement[:100]


def test_local_tables_are_the_single_node_tables_replicated() -> None:
    events_local, _, rollup_local, _, view, steps = STATEMENTS
    # Same column list, indexes, sorting key, partitions, TTL and settings: one template.
    assert body(events_local) == body(events_table_ddl("events_local"))
    assert (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/events_local', '{replica}')"
    ) in events_local
    single_rollup, single_view = session_hours_ddl("events")
    assert body(rollup_local) == body(single_rollup)
    assert (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/events_session_hours_local', '{replica}')"
    ) in rollup_local
    assert body(steps) == body(schema_steps_ddl("events"))
    assert (
        "ENGINE = ReplicatedMergeTree("
        "'/clickhouse/tables/all/{database}/events_schema_steps', '{shard}-{replica}')"
    ) in steps
    # The view is the single node's, between the two local tables.
    assert view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS events_session_hours_mv ON CLUSTER"
        " analytics_cluster TO events_session_hours_local AS\n"
    )
    assert view.endswith(" FROM events_local")
    assert (
        view.split(" AS\n", 1)[1].replace("events_local", "events")
        == single_view.split(" AS\n", 1)[1]
    )


def test_the_sink_and_the_reads_use_distributed_tables_of_the_usual_names() -> None:
    _, events, _, rollup, _, _ = STATEMENTS
    assert events == (
        "CREATE TABLE IF NOT EXISTS events ON CLUSTER analytics_cluster AS events_local"
        " ENGINE = Distributed(analytics_cluster, 'trackflow', events_local,"
        " cityHash64(tenant_id, session_id))"
    )
    assert rollup == (
        "CREATE TABLE IF NOT EXISTS events_session_hours ON CLUSTER analytics_cluster"
        " AS events_session_hours_local ENGINE = Distributed(analytics_cluster, 'trackflow',"
        " events_session_hours_local, cityHash64(tenant_id, session_key))"
    )
    # The one-off fill reads and writes through them (it is the single node's statement).
    assert FILL.startswith("INSERT INTO events_session_hours SELECT")


def test_a_qualified_table_names_its_own_database() -> None:
    statements = cluster_schema_ddl("web.events", "c1", "ignored")
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS web.events_local ON CLUSTER c1 (")
    assert "Distributed(c1, 'web', events_local, " in statements[1]
    assert "/clickhouse/tables/{shard}/{database}/events_local'" in statements[0]
    assert "TO web.events_session_hours_local AS" in statements[4]
    assert statements[4].endswith(" FROM web.events_local")


@pytest.mark.parametrize("cluster", ["", "a-b", "c; DROP TABLE events", "1c", "c d"])
def test_invalid_cluster_name_rejected(cluster: str) -> None:
    with pytest.raises(ValueError, match="invalid ClickHouse cluster name"):
        cluster_schema_ddl("events", cluster, "default")


def test_invalid_database_name_rejected() -> None:
    with pytest.raises(ValueError, match="invalid ClickHouse database name"):
        cluster_schema_ddl("events", "c1", "x'); DROP TABLE events; --")


def test_a_template_without_one_engine_or_create_header_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one MergeTree-family engine"):
        replicated("CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = Memory", "/p")
    with pytest.raises(ValueError, match="not a CREATE"):
        on_cluster("CREATE TABLE t (a UInt8) ENGINE = Memory", "c1")


class RecordingClient:
    """Stands in for clickhouse-connect's client: records commands (a migration's record as
    "record <name>"), answers the store's reads (the current database, the migrations recorded
    before: the fill or none, column types and table engines: none)."""

    def __init__(self, fill_done: bool) -> None:
        self.commands: list[str] = []
        self.fill_done = fill_done

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        if sql == "SELECT currentDatabase()":
            return "trackflow"
        if sql.startswith("INSERT INTO events_schema_steps (step) VALUES ({step:String})"):
            sql = f"record {(parameters or {})['step']}"
        self.commands.append(sql)
        return None

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        rows: list[tuple[Any, ...]] = []
        if "events_schema_steps" in sql:
            rows = [(FILL_SESSION_HOURS,)] if self.fill_done else []
        else:
            assert "system.columns" in sql or "system.tables" in sql, sql
        return SimpleNamespace(result_rows=rows)


@pytest.mark.parametrize("fill_done", [False, True])
def test_store_makes_the_cluster_schema_then_fills_once(fill_done: bool) -> None:
    store = EventStore("https://clickhouse.example:8443", "events", cluster="analytics_cluster")
    client = RecordingClient(fill_done)
    store._client = client
    store._ensure_schema()
    # Made at today's layout: every migration is recorded as applied, in order; of them only
    # the fill runs, once.
    migrations: list[str] = []
    for migration in MIGRATIONS:
        if migration.name != FILL_SESSION_HOURS:
            migrations.append(f"record {migration.name}")
        elif not fill_done:
            migrations += [FILL, f"record {FILL_SESSION_HOURS}"]
    assert client.commands == [*STATEMENTS, *migrations]
    # No single-node statement (and no ALTER of an earlier table) is run on a cluster.
    assert not any(" ON CLUSTER " not in c for c in client.commands[: len(STATEMENTS)])
    assert not any(c.startswith("ALTER") for c in client.commands)
    store._executor.shutdown()


def test_store_without_a_cluster_runs_the_single_node_schema() -> None:
    store = EventStore("https://clickhouse.example:8443", "events")
    client = RecordingClient(fill_done=True)
    store._client = client
    store._ensure_schema()
    assert client.commands[0] == events_table_ddl("events")
    assert not any("ON CLUSTER" in c for c in client.commands)
    store._executor.shutdown()


def test_cluster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_trackflow_env(monkeypatch)
    assert Settings().clickhouse_cluster == ""  # a single node, today's schema
    monkeypatch.setenv("TRACKFLOW_CLICKHOUSE_CLUSTER", "analytics_cluster")
    with pytest.raises(ValidationError, match="needs a ClickHouse server"):
        Settings()  # the default store is embedded chDB: one node, no ON CLUSTER
    monkeypatch.setenv("TRACKFLOW_CLICKHOUSE_URL", "https://user:pw@clickhouse:8443/trackflow")
    assert Settings().clickhouse_cluster == "analytics_cluster"
    monkeypatch.setenv("TRACKFLOW_CLICKHOUSE_CLUSTER", "analytics-cluster")
    with pytest.raises(ValidationError, match="clickhouse_cluster"):
        Settings()
