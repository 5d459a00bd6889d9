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


def events_table_ddl(table: str = "events") -> str:
    if not _IDENTIFIER.match(table):
        raise ValueError(f"invalid ClickHouse table name {table!r}: use letters, digits, _")
    sql = resources.files("schemas").joinpath("events.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return body.replace("{table}", table).strip()
