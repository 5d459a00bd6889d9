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


def events_table_ddl(table: str = "events") -> str:
    return "\n".join(_statement_lines()).replace("{table}", _checked(table)).strip()


# Plain columns events.sql gained after tables were already stored; they carry a DEFAULT.
LATER_COLUMNS: tuple[str, ...] = ("is_bot",)


def added_column_ddl(table: str = "events") -> list[str]:
    """ALTERs that give a table made by an earlier TrackFlow its computed (MATERIALIZED) columns
    and the LATER_COLUMNS.

    A no-op where the column exists. Parts written before the ALTER compute the value on read
    until a merge stores it (a LATER_COLUMNS column reads its DEFAULT there), so the figures are
    the same either way.
    """
    checked = _checked(table)
    return [
        f"ALTER TABLE {checked} ADD COLUMN IF NOT EXISTS {line.strip().rstrip(',')}"
        for line in _statement_lines()
        if " MATERIALIZED " in line or line.strip().split(" ", 1)[0] in LATER_COLUMNS
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


_PROPERTIES = re.compile(r"^\s+properties (JSON\(.+\)),$")
DEDUP_WINDOW = re.compile(r"non_replicated_deduplication_window = (\d+)")


def storage_bound_ddl(table: str, existing: Mapping[str, str]) -> list[str]:
    """ALTERs that give a table made by an earlier TrackFlow the bounded layout of events.sql:
    the properties column's path limit and the insert deduplication window."""
    checked = _checked(table)
    lines = _statement_lines()
    statements = [
        f"ALTER TABLE {checked} MODIFY COLUMN properties {match.group(1)}"
        for match in (_PROPERTIES.match(line) for line in lines)
        if match and existing.get("properties") == "JSON"
    ]
    window = DEDUP_WINDOW.search("\n".join(lines))
    if window:
        statements.append(
            f"ALTER TABLE {checked} MODIFY SETTING "
            f"non_replicated_deduplication_window = {window.group(1)}"
        )
    return statements


def session_hours_table(table: str = "events") -> str:
    return f"{_checked(table)}_session_hours"


def session_hours_select(table: str = "events") -> str:
    """The rollup's rows for the events of ``table`` (the view's query and the first fill)."""
    return (
        "SELECT DISTINCT tenant_id, toStartOfHour(timestamp) AS hour, device_type, os, browser,"
        f" country, session_key, user_key, is_bot FROM {_checked(table)}"
    )


def session_hours_ddl(table: str = "events") -> list[str]:
    """The rollup table, then the materialized view that fills it on every insert."""
    sql = "\n".join(_sql_lines("session_hours.sql")).replace("{table}", _checked(table))
    sql = sql.replace("{select}", session_hours_select(table))
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


_ROLLUP_KEY = re.compile(r"^ORDER BY \((.+)\)$", re.M)


def session_hours_view(table: str = "events") -> str:
    return f"{session_hours_table(table)}_mv"


def session_hours_bot_ddl(
    table: str, rollup_columns: Mapping[str, str], view_columns: Mapping[str, str]
) -> list[str]:
    """ALTERs that give a rollup made by an earlier TrackFlow its is_bot column, and its view the
    query that fills it (session_hours.sql); run before the view's CREATE ... IF NOT EXISTS,
    which ClickHouse checks against the rollup even when the view exists.

    The arguments map the column names of the rollup and of its view to their types
    (system.columns; empty when there is no such table). The column goes last in the sorting
    key, which ClickHouse allows only in the ALTER that adds it. Safe to repeat.
    """
    rollup = session_hours_table(table)
    statements = []
    if rollup_columns and "is_bot" not in rollup_columns:
        key = _ROLLUP_KEY.search("\n".join(_sql_lines("session_hours.sql")))
        if key is None:
            raise RuntimeError("schemas/session_hours.sql has no ORDER BY line")
        statements.append(
            f"ALTER TABLE {rollup} ADD COLUMN IF NOT EXISTS is_bot Bool,"
            f" MODIFY ORDER BY ({key.group(1)})"
        )
    if view_columns and "is_bot" not in view_columns:
        view = session_hours_view(table)
        statements.append(f"ALTER TABLE {view} MODIFY QUERY {session_hours_select(table)}")
    return statements


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
