"""The ClickHouse DDL, loaded from ``events.sql`` beside this file."""

from __future__ import annotations

import re
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


def _statement_lines() -> list[str]:
    sql = resources.files("schemas").joinpath("events.sql").read_text(encoding="utf-8")
    return [line for line in sql.splitlines() if not line.startswith("--")]


def events_table_ddl(table: str = "events") -> str:
    return "\n".join(_statement_lines()).replace("{table}", _checked(table)).strip()


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
