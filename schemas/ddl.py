"""The ClickHouse DDL, loaded from ``events.sql`` beside this file."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

# Columns the sink writes, in insert order (received_at/inserted_at defaults are not relied on).
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "timestamp",
    "tenant_id",
    "session_id",
    "user_id",
    "page_url",
    "referrer",
    "device_type",
    "os",
    "browser",
    "ip_address",
    "country",
    "region",
    "city",
    "properties",
    "received_at",
    "client_timestamp",
    "seq",
    "user_agent",
    "is_bot",
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def checked_table(table: str) -> str:
    """The table name, if it is a plain (optionally database-qualified) identifier."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"invalid ClickHouse table name {table!r}: use letters, digits, _")
    return table


_checked = checked_table


def _sql_lines(name: str) -> list[str]:
    sql = resources.files("schemas").joinpath(name).read_text(encoding="utf-8")
    return [line for line in sql.splitlines() if not line.startswith("--")]


def _statement_lines() -> list[str]:
    return _sql_lines("events.sql")


# TRACKFLOW_RETENTION_DAYS's default: how many days the events table keeps an event.
DEFAULT_RETENTION_DAYS = 365


def checked_days(retention_days: int) -> str:
    if (
        isinstance(retention_days, bool)
        or not isinstance(retention_days, int)
        or retention_days < 1
    ):
        raise ValueError(f"retention must be a whole number of days >= 1, not {retention_days!r}")
    return str(retention_days)


def events_table_ddl(table: str = "events", retention_days: int = DEFAULT_RETENTION_DAYS) -> str:
    sql = "\n".join(_statement_lines()).replace("{table}", _checked(table))
    return sql.replace("{retention_days}", checked_days(retention_days)).strip()


def session_hours_table(table: str = "events") -> str:
    return f"{_checked(table)}_session_hours"


def session_hours_select(table: str = "events") -> str:
    """The rollup's rows for the events of ``table`` (the view's query)."""
    return (
        "SELECT DISTINCT tenant_id, toStartOfHour(timestamp) AS hour, device_type, os, browser,"
        f" country, session_key, user_key, is_bot FROM {_checked(table)}"
    )


def session_hours_ddl(
    table: str = "events", retention_days: int = DEFAULT_RETENTION_DAYS
) -> list[str]:
    """The rollup table, then the materialized view that fills it on every insert."""
    return _session_hours_statements(
        rollup=session_hours_table(table),
        view=f"{_checked(table)}_session_hours_mv",
        source=table,
        retention_days=retention_days,
    )


def _session_hours_statements(
    rollup: str, view: str, source: str, retention_days: int = DEFAULT_RETENTION_DAYS
) -> list[str]:
    """session_hours.sql with its rollup and view named, the view reading ``source``."""
    sql = "\n".join(_sql_lines("session_hours.sql"))
    sql = sql.replace("{table}_session_hours_mv", _checked(view))
    sql = sql.replace("{table}_session_hours", _checked(rollup))
    sql = sql.replace("{select}", session_hours_select(source))
    sql = sql.replace("{retention_days}", checked_days(retention_days))
    if "{table}" in sql:
        raise ValueError("session_hours.sql names {table} other than as its rollup or view")
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


def session_hours_view(table: str = "events") -> str:
    return f"{session_hours_table(table)}_mv"


def schema_steps_table(table: str = "events") -> str:
    return f"{_checked(table)}_schema_steps"


def schema_steps_ddl(table: str = "events") -> str:
    """The record of the migrations applied to ``table`` (schemas/migrations.py), by name: a
    recorded migration is not applied again."""
    return (
        f"CREATE TABLE IF NOT EXISTS {schema_steps_table(table)}"
        " (step String, done_at DateTime64(3, 'UTC') DEFAULT now64(3))"
        " ENGINE = MergeTree ORDER BY step"
    )


# -- Inserting processed records -------------------------------------------------------------
# The sink hands the store each processed-topic record as it is (a ProcessedEvent as JSON, its
# times in milliseconds) and ClickHouse maps it to a row: the times become DateTime64 in the
# insert's SELECT. Mapping them in Python cost the sink ~8 µs per event (bench/tuning.md).

RECORD_TIME_COLUMNS = ("timestamp", "client_timestamp", "received_at")
_COLUMN_LINE = re.compile(r"^\s+([a-z_]+) (.+?)(?: (?:DEFAULT|MATERIALIZED) .*)?,$")
# The ClickHouse source that reads an insert's rows from the body of its HTTP request.
INPUT_SOURCE = "input"


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def event_column_types() -> dict[str, str]:
    """The type of each column of the events table that the sink writes, from events.sql."""
    found = (_COLUMN_LINE.match(line) for line in _statement_lines())
    types = {match[1]: match[2] for match in found if match}
    return {name: types[name] for name in EVENT_COLUMNS}


@cache  # read from events.sql once: the sink builds an insert from it several times a second
def record_structure() -> str:
    """A processed record's fields as ClickHouse reads them: the table's types, except that the
    times are milliseconds (Nullable, so that a record without one is refused, not stored at
    1970)."""
    types = event_column_types()
    return ", ".join(
        f"{name} {'Nullable(Int64)' if name in RECORD_TIME_COLUMNS else types[name]}"
        for name in EVENT_COLUMNS
    )


def record_insert_sql(table: str, source: str, settings: dict[str, str] | None = None) -> str:
    """Insert processed records from ``source`` into ``table``: ``INPUT_SOURCE`` (the request's
    body, JSONEachRow) or a JSONEachRow file's path.

    A record without one of its times is refused with code 395 (throwIf), one whose fields the
    types cannot read with ClickHouse's parse errors: both are row errors to agents.insert_errors.
    """
    structure = sql_string(record_structure())
    reader = (
        f"input({structure})"
        if source == INPUT_SOURCE
        else f"file({sql_string(source)}, 'JSONEachRow', {structure})"
    )
    values = ", ".join(
        f"fromUnixTimestamp64Milli(assumeNotNull({name}), 'UTC')"
        if name in RECORD_TIME_COLUMNS
        else name
        for name in EVENT_COLUMNS
    )
    missing_time = " OR ".join(f"{name} IS NULL" for name in RECORD_TIME_COLUMNS)
    clause = ", ".join(
        f"{checked_name(k, 'setting')} = {sql_string(v)}" for k, v in (settings or {}).items()
    )
    return (
        f"INSERT INTO {_checked(table)} ({', '.join(EVENT_COLUMNS)}) SELECT {values} FROM {reader}"
        f" WHERE NOT throwIf({missing_time}, 'a processed record without its times')"
        + (f" SETTINGS {clause}" if clause else "")
        + (" FORMAT JSONEachRow" if source == INPUT_SOURCE else "")
    )


# -- A ClickHouse cluster ---------------------------------------------------------------------
# The same statements as above, made ON CLUSTER: each table becomes a Replicated table on every
# node (suffix _local) under the name the sink and the read API use, a Distributed table over
# them. README "Scaling" says where inserts and reads go and why the sharding key is the session.

LOCAL_SUFFIX = "_local"
# A session's events, and so every repeat of one event, live on one shard: the shard's
# ReplacingMergeTree collapses repeats and FINAL on the Distributed table (applied per shard)
# shows each event once, while a large tenant's sessions still spread over all shards.
EVENTS_SHARDING_KEY = "cityHash64(tenant_id, session_id)"
# Only the one-off fill writes through the rollup's Distributed table (the view writes each
# shard's own rows locally); a session's rows go to one shard here too.
SESSION_HOURS_SHARDING_KEY = "cityHash64(tenant_id, session_key)"
REPLICA_NAME = "{replica}"
# The schema-step records are replicated to every node (not split by shard), so a worker sees
# the same steps whichever node it reaches; {shard}-{replica} is unique across the cluster.
EVERY_NODE_REPLICA_NAME = "{shard}-{replica}"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREATE_HEADER = re.compile(r"^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS [A-Za-z0-9_.]+")
_ENGINE = re.compile(r"\bENGINE = ((?:Replacing)?MergeTree)(?:\(\))?")


def checked_name(name: str, what: str) -> str:
    """A bare ClickHouse identifier (cluster, database): letters, digits, _."""
    if not _NAME.match(name):
        raise ValueError(f"invalid ClickHouse {what} name {name!r}: use letters, digits, _")
    return name


def local_table(table: str) -> str:
    """The Replicated table on each node behind the Distributed table ``table``."""
    return f"{_checked(table)}{LOCAL_SUFFIX}"


def zookeeper_path(table: str, shard: str = "{shard}") -> str:
    """Where a Replicated table keeps its replication log: per shard, database and table."""
    return f"/clickhouse/tables/{shard}/{{database}}/{_checked(table).rpartition('.')[2]}"


def on_cluster(statement: str, cluster: str) -> str:
    """``statement`` (a CREATE ... IF NOT EXISTS) run on every node of ``cluster``."""
    header = _CREATE_HEADER.match(statement)
    if header is None:
        raise ValueError(f"not a CREATE ... IF NOT EXISTS statement: {statement[:60]!r}")
    clause = f" ON CLUSTER {checked_name(cluster, 'cluster')}"
    return statement[: header.end()] + clause + statement[header.end() :]


def replicated(statement: str, path: str, replica: str = REPLICA_NAME) -> str:
    """``statement`` with its (Replacing)MergeTree engine made the Replicated one."""
    engines = _ENGINE.findall(statement)
    if len(engines) != 1:
        raise ValueError(f"expected one MergeTree-family engine, found {engines}")
    engine = f"ENGINE = Replicated{engines[0]}('{path}', '{replica}')"
    return _ENGINE.sub(engine, statement, count=1)


def distributed_ddl(table: str, cluster: str, database: str, sharding_key: str) -> str:
    """``table`` as a Distributed table over ``table``_local on every shard of ``cluster``."""
    own_database, _, _ = _checked(table).rpartition(".")
    remote_database = checked_name(own_database or database, "database")
    local = local_table(table)
    return on_cluster(
        f"CREATE TABLE IF NOT EXISTS {table} AS {local} ENGINE = Distributed("
        f"{checked_name(cluster, 'cluster')}, '{remote_database}', {local.rpartition('.')[2]},"
        f" {sharding_key})",
        cluster,
    )


def cluster_schema_ddl(
    table: str, cluster: str, database: str, retention_days: int = DEFAULT_RETENTION_DAYS
) -> list[str]:
    """Every table of a ClickHouse cluster, in order: the events (local, then Distributed), the
    session-hour rollup (local, then Distributed), the view between the two local tables, and
    the schema-step records.

    ``database`` is the one the tables are in when ``table`` names none (the Distributed tables
    name it: each node resolves it alike). The statements are those of the single-node schema,
    rendered from the same templates, with ON CLUSTER and Replicated engines.
    """
    events_local = local_table(table)
    rollup = session_hours_table(table)
    rollup_local = local_table(rollup)
    rollup_table, view = _session_hours_statements(
        rollup=rollup_local,
        view=f"{_checked(table)}_session_hours_mv",
        source=events_local,
        retention_days=retention_days,
    )
    return [
        on_cluster(
            replicated(
                events_table_ddl(events_local, retention_days), zookeeper_path(events_local)
            ),
            cluster,
        ),
        distributed_ddl(table, cluster, database, EVENTS_SHARDING_KEY),
        on_cluster(replicated(rollup_table, zookeeper_path(rollup_local)), cluster),
        distributed_ddl(rollup, cluster, database, SESSION_HOURS_SHARDING_KEY),
        on_cluster(view, cluster),
        on_cluster(
            replicated(
                schema_steps_ddl(table),
                zookeeper_path(schema_steps_table(table), shard="all"),
                EVERY_NODE_REPLICA_NAME,
            ),
            cluster,
        ),
    ]


# -- retention (the TTL of the events table and of the rollup) ------------------------------
def ttl_expression(sql_name: str, retention_days: int) -> str:
    """The TTL expression of a .sql file's TTL line, for this many days of retention."""
    [line] = [line for line in _sql_lines(sql_name) if line.startswith("TTL ")]
    expression = line.removeprefix("TTL ").strip()
    return expression.replace("{retention_days}", checked_days(retention_days))
