"""The ClickHouse DDL, loaded from ``events.sql`` beside this file."""

from __future__ import annotations

import re
from collections.abc import Mapping
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
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _checked(table: str) -> str:
    if not _IDENTIFIER.match(table):
        raise ValueError(f"invalid ClickHouse table name {table!r}: use letters, digits, _")
    return table


def _sql_lines(name: str) -> list[str]:
    sql = resources.files("schemas").joinpath(name).read_text(encoding="utf-8")
    return [line for line in sql.splitlines() if not line.startswith("--")]


def _statement_lines() -> list[str]:
    return _sql_lines("events.sql")


# TRACKFLOW_RETENTION_DAYS's default: how many days the events table keeps an event.
DEFAULT_RETENTION_DAYS = 365


def _days(retention_days: int) -> str:
    if (
        isinstance(retention_days, bool)
        or not isinstance(retention_days, int)
        or retention_days < 1
    ):
        raise ValueError(f"retention must be a whole number of days >= 1, not {retention_days!r}")
    return str(retention_days)


def events_table_ddl(table: str = "events", retention_days: int = DEFAULT_RETENTION_DAYS) -> str:
    sql = "\n".join(_statement_lines()).replace("{table}", _checked(table))
    return sql.replace("{retention_days}", _days(retention_days)).strip()


def added_column_ddl(table: str = "events") -> list[str]:
    """ALTERs that give a table made by an earlier TrackFlow its computed (MATERIALIZED) columns.

    A no-op where the column exists. Parts written before the ALTER compute the value on read
    until a merge stores it, so the figures are the same either way.
    """
    checked = _checked(table)
    return [
        f"ALTER TABLE {checked} ADD COLUMN IF NOT EXISTS {line.strip().rstrip(',')}"
        for line in _statement_lines()
        if " MATERIALIZED " in line
    ]


def _low_cardinality_columns() -> dict[str, str]:
    """Column name -> LowCardinality type, as written in events.sql."""
    found = (_LOW_CARDINALITY.match(line) for line in _statement_lines())
    return {match.group(1): match.group(2) for match in found if match}


_LOW_CARDINALITY = re.compile(r"^\s+([a-z_]+) (LowCardinality\(.+\)),$")


def retyped_column_ddl(table: str, existing: Mapping[str, str]) -> list[str]:
    """ALTERs that give a table made by an earlier TrackFlow the column types of events.sql.

    ``existing`` maps the table's column names to their types (system.columns). Only the
    conversions events.sql introduced are made: a plain column to its LowCardinality form.
    """
    checked = _checked(table)
    return [
        f"ALTER TABLE {checked} MODIFY COLUMN {name} {wanted}"
        for name, wanted in _low_cardinality_columns().items()
        if existing.get(name) == wanted.removeprefix("LowCardinality(").removesuffix(")")
    ]


def session_hours_table(table: str = "events") -> str:
    return f"{_checked(table)}_session_hours"


def session_hours_select(table: str = "events") -> str:
    """The rollup's rows for the events of ``table`` (the view's query and the first fill)."""
    return (
        "SELECT DISTINCT tenant_id, toStartOfHour(timestamp) AS hour, device_type, os, browser,"
        f" country, session_key, user_key FROM {_checked(table)}"
    )


def session_hours_ddl(
    table: str = "events", retention_days: int = DEFAULT_RETENTION_DAYS
) -> list[str]:
    """The rollup table, then the materialized view that fills it on every insert."""
    sql = "\n".join(_sql_lines("session_hours.sql")).replace("{table}", _checked(table))
    sql = sql.replace("{retention_days}", _days(retention_days))
    sql = sql.replace("{select}", session_hours_select(table))
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


def session_hours_fill(table: str = "events") -> str:
    """Fills the rollup from the events already stored (run once, after the view exists)."""
    return f"INSERT INTO {session_hours_table(table)} {session_hours_select(table)}"


def schema_steps_table(table: str = "events") -> str:
    return f"{_checked(table)}_schema_steps"


def schema_steps_ddl(table: str = "events") -> str:
    """A table of the one-off schema steps done on ``table`` (a done step is not redone)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {schema_steps_table(table)}"
        " (step String, done_at DateTime64(3, 'UTC') DEFAULT now64(3))"
        " ENGINE = MergeTree ORDER BY step"
    )


# -- retention (the TTL of the events table and of the rollup) ------------------------------
_TTL_CLAUSE = re.compile(r"\bTTL (.+?)(?= SETTINGS |$)")
_WRITTEN_INTERVAL = re.compile(r"\bINTERVAL (\d+) ([A-Z]+)\b")
_STORED_INTERVAL = re.compile(r"\btoInterval([A-Za-z]+)\((\d+)\)")


def _ttl_expression(sql_name: str, retention_days: int) -> str:
    """The TTL expression of a .sql file's TTL line, for this many days of retention."""
    [line] = [line for line in _sql_lines(sql_name) if line.startswith("TTL ")]
    return line.removeprefix("TTL ").strip().replace("{retention_days}", _days(retention_days))


def _written_intervals(expression: str) -> list[tuple[str, int]]:
    return [(unit.lower(), int(n)) for n, unit in _WRITTEN_INTERVAL.findall(expression)]


def stored_ttl_intervals(engine_full: str) -> list[tuple[str, int]] | None:
    """The intervals of a table's TTL as ClickHouse shows it in system.tables.engine_full
    (``TTL ts + toIntervalDay(30)``): [("day", 30)]; None for a table without a TTL."""
    match = _TTL_CLAUSE.search(engine_full)
    if match is None:
        return None
    return [(unit.lower(), int(n)) for unit, n in _STORED_INTERVAL.findall(match.group(1))]


def retention_ttl_ddl(table: str, retention_days: int, engine_full: Mapping[str, str]) -> list[str]:
    """ALTERs that give the events table and its rollup the TTL of ``retention_days``.

    ``engine_full`` maps table names to system.tables.engine_full. A table whose TTL already
    has these intervals (or that does not exist) is left alone, so the step is safe to repeat.
    """
    wanted = {
        _checked(table): _ttl_expression("events.sql", retention_days),
        session_hours_table(table): _ttl_expression("session_hours.sql", retention_days),
    }
    statements = []
    for name, expression in wanted.items():
        current = engine_full.get(name.rpartition(".")[2])
        if current is None:
            continue
        if stored_ttl_intervals(current) != _written_intervals(expression):
            statements.append(f"ALTER TABLE {name} MODIFY TTL {expression}")
    return statements
