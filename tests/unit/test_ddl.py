"""schemas.ddl: the events table DDL against the seed's schema."""

from __future__ import annotations

import re

import pytest

from schemas.ddl import (
    EVENT_COLUMNS,
    added_column_ddl,
    events_table_ddl,
    retention_ttl_ddl,
    retyped_column_ddl,
    session_hours_bot_ddl,
    session_hours_ddl,
    session_hours_fill,
    stored_ttl_intervals,
)

# The seed's columns and types (trackflow-data-types.md, "Event Storage").
SEED_COLUMNS = {
    "event_id": "UUID",
    "event_type": "Enum8('page_view' = 1, 'click' = 2, 'error' = 3, 'performance' = 4)",
    "timestamp": "DateTime64(3, 'UTC')",
    "tenant_id": "String",
    "session_id": "String",
    "user_id": "Nullable(String)",
    "page_url": "String",
    "referrer": "Nullable(String)",
    "device_type": "String",
    "os": "String",
    "browser": "String",
    "ip_address": "Nullable(String)",
    "country": "Nullable(String)",
    "region": "Nullable(String)",
    "city": "Nullable(String)",
    "properties": "JSON",
    "received_at": "DateTime64(3, 'UTC')",
}


def column_lines(ddl: str) -> dict[str, str]:
    found = {}
    for line in ddl.splitlines():
        match = re.match(r"^\s+([a-z_]+)\s+(.+?),?$", line)
        if match and match.group(1) not in {"INDEX"}:
            found[match.group(1)] = match.group(2)
    return found


DDL = events_table_ddl()
COMPUTED = (
    "session_key",
    "user_key",
    "error_fingerprint",
    "referrer_host",
    "referrer_internal",
    "load_time",
    "dom_content_loaded",
)


LOW_CARDINALITY = ("page_url", "device_type", "os", "browser", "country")


def test_every_seed_column_has_the_seed_type() -> None:
    columns = column_lines(DDL)
    for name, sql_type in SEED_COLUMNS.items():
        assert name in columns, name
        # LowCardinality(T) is T stored with a dictionary: the same values in and out.
        if name in LOW_CARDINALITY:
            sql_type = f"LowCardinality({sql_type})"
        assert columns[name].startswith(sql_type), (name, columns[name])


def test_every_inserted_column_is_defined() -> None:
    columns = column_lines(DDL)
    assert set(EVENT_COLUMNS) <= set(columns)


def test_no_where_inside_an_index() -> None:
    index_lines = [line for line in DDL.splitlines() if line.strip().startswith("INDEX")]
    assert len(index_lines) >= 3
    for line in index_lines:
        assert "WHERE" not in line.upper(), line
    assert "WHERE" not in DDL.upper()


def test_engine_and_seed_keys() -> None:
    assert re.search(r"^ENGINE = ReplacingMergeTree\(\)$", DDL, re.M)
    assert "ORDER BY (tenant_id, toStartOfHour(timestamp), event_type, event_id)" in DDL
    assert "PARTITION BY toYYYYMM(timestamp)" in DDL
    assert "TTL timestamp + INTERVAL 365 DAY" in DDL  # TRACKFLOW_RETENTION_DAYS default


def test_seed_indexes_kept() -> None:
    assert "INDEX idx_tenant_type_time (tenant_id, event_type, timestamp) TYPE minmax" in DDL
    assert "INDEX idx_session (session_id) TYPE bloom_filter" in DDL
    assert "INDEX idx_user (user_id) TYPE bloom_filter" in DDL


def test_table_name_substitution_and_no_comments() -> None:
    assert DDL.startswith("CREATE TABLE IF NOT EXISTS events (")
    qualified = events_table_ddl("analytics.events_v2")
    assert qualified.startswith("CREATE TABLE IF NOT EXISTS analytics.events_v2 (")
    assert "{table}" not in qualified
    assert not any(line.startswith("--") for line in DDL.splitlines())


@pytest.mark.parametrize(
    "name",
    ["", "events; DROP TABLE x", "1events", "ev-ents", "a.b.c", "events ", "`events`", "db."],
)
def test_invalid_table_name_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="invalid ClickHouse table name"):
        events_table_ddl(name)


def test_computed_columns_are_materialized_and_never_inserted() -> None:
    columns = column_lines(DDL)
    computed = {name for name, definition in columns.items() if " MATERIALIZED " in definition}
    assert computed == set(COMPUTED)
    assert not computed & set(EVENT_COLUMNS)


def test_older_tables_get_the_computed_columns_by_alter() -> None:
    statements = added_column_ddl("analytics.events")
    assert [s.split()[8] for s in statements] == ["is_bot", *COMPUTED]
    columns = column_lines(DDL)
    for statement in statements:
        assert statement.startswith("ALTER TABLE analytics.events ADD COLUMN IF NOT EXISTS ")
        name, definition = statement.split()[8], statement.split(maxsplit=9)[9]
        assert columns[name] == definition
    with pytest.raises(ValueError, match="invalid ClickHouse table name"):
        added_column_ddl("events; DROP TABLE x")


def test_older_tables_get_low_cardinality_columns_by_alter() -> None:
    seed_types = {name: SEED_COLUMNS[name] for name in LOW_CARDINALITY}
    statements = retyped_column_ddl("analytics.events", {**seed_types, "tenant_id": "String"})
    assert statements == [
        f"ALTER TABLE analytics.events MODIFY COLUMN {name} LowCardinality({seed_types[name]})"
        for name in LOW_CARDINALITY
    ]
    current = {name: f"LowCardinality({sql_type})" for name, sql_type in seed_types.items()}
    assert retyped_column_ddl("events", current) == []  # already converted: nothing to do
    assert retyped_column_ddl("events", {"os": "Nullable(String)"}) == []  # not ours to convert
    with pytest.raises(ValueError, match="invalid ClickHouse table name"):
        retyped_column_ddl("events; DROP TABLE x", {})


def test_session_hour_rollup_and_its_view() -> None:
    table, view = session_hours_ddl("analytics.events")
    assert table.startswith("CREATE TABLE IF NOT EXISTS analytics.events_session_hours (")
    assert "allow_nullable_key = 1" in table
    # Every column is in the sorting key, so a merge folds only rows that are equal throughout.
    key = re.search(r"^ORDER BY \((.+)\)$", table, re.M)
    assert key is not None
    columns = column_lines(table)
    assert key.group(1).split(", ") == list(columns)
    assert view.startswith(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.events_session_hours_mv"
        " TO analytics.events_session_hours AS\nSELECT DISTINCT tenant_id,"
    )
    assert view.endswith(" FROM analytics.events")
    fill = session_hours_fill("analytics.events")
    assert fill.startswith("INSERT INTO analytics.events_session_hours SELECT DISTINCT tenant_id,")
    assert fill.split(" SELECT ", 1)[1] == view.split("\nSELECT ", 1)[1]
    assert "{" not in table + view + fill
    with pytest.raises(ValueError, match="invalid ClickHouse table name"):
        session_hours_ddl("events; DROP TABLE x")


def test_bot_flag_is_inserted_with_a_default_for_older_rows() -> None:
    assert column_lines(DDL)["is_bot"] == "Bool DEFAULT false"
    assert "is_bot" in EVENT_COLUMNS
    assert (
        "ALTER TABLE events ADD COLUMN IF NOT EXISTS is_bot Bool DEFAULT false"
        in added_column_ddl()
    )


def test_an_older_rollup_gets_the_bot_flag_last_in_its_key() -> None:
    table, view = session_hours_ddl("events")
    key = re.search(r"^ORDER BY \((.+)\)$", table, re.M)
    assert key is not None
    assert key.group(1).endswith(", user_key, is_bot")
    assert view.endswith(", session_key, user_key, is_bot FROM events")
    older = {"tenant_id": "String", "session_key": "UInt128"}
    add, modify = session_hours_bot_ddl("analytics.events", older, older)
    assert add == (
        "ALTER TABLE analytics.events_session_hours ADD COLUMN IF NOT EXISTS is_bot Bool,"
        f" MODIFY ORDER BY ({key.group(1)})"
    )
    assert modify == (
        "ALTER TABLE analytics.events_session_hours_mv MODIFY QUERY "
        + view.split("\n", 1)[1].replace(" FROM events", " FROM analytics.events")
    )
    current = {**older, "is_bot": "Bool"}
    assert session_hours_bot_ddl("analytics.events", current, older) == [modify]  # cut short
    assert session_hours_bot_ddl("analytics.events", current, current) == []  # repeated
    assert session_hours_bot_ddl("analytics.events", current, {}) == []  # new: no view yet


def test_retention_days_set_both_ttls() -> None:
    assert "TTL timestamp + INTERVAL 30 DAY\n" in events_table_ddl("events", 30)
    rollup, _view = session_hours_ddl("events", 30)
    assert "TTL hour + INTERVAL 30 DAY + INTERVAL 1 HOUR\n" in rollup
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="retention"):
            events_table_ddl("events", bad)


ENGINE = "ReplacingMergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY x TTL {} SETTINGS a = 1"
ROLLUP_ENGINE = "ReplacingMergeTree ORDER BY h TTL {} SETTINGS allow_nullable_key = 1"


def test_stored_ttl_is_read_from_engine_full() -> None:
    assert stored_ttl_intervals(ENGINE.format("timestamp + toIntervalYear(1)")) == [("year", 1)]
    assert stored_ttl_intervals(
        ROLLUP_ENGINE.format("(hour + toIntervalDay(30)) + toIntervalHour(1)")
    ) == [("day", 30), ("hour", 1)]
    assert stored_ttl_intervals("MergeTree ORDER BY step SETTINGS index_granularity = 8192") is None


def test_retention_change_alters_only_tables_whose_ttl_differs() -> None:
    engines = {
        "events": ENGINE.format("timestamp + toIntervalDay(365)"),
        "events_session_hours": ROLLUP_ENGINE.format(
            "(hour + toIntervalDay(365)) + toIntervalHour(1)"
        ),
    }
    assert retention_ttl_ddl("events", 365, engines) == []
    assert retention_ttl_ddl("events", 30, engines) == [
        "ALTER TABLE events MODIFY TTL timestamp + INTERVAL 30 DAY",
        "ALTER TABLE events_session_hours MODIFY TTL hour + INTERVAL 30 DAY + INTERVAL 1 HOUR",
    ]
    # A store made when the TTL was a fixed year takes the setting's days.
    engines["events"] = ENGINE.format("timestamp + toIntervalYear(1)")
    assert retention_ttl_ddl("events", 365, engines) == [
        "ALTER TABLE events MODIFY TTL timestamp + INTERVAL 365 DAY"
    ]
    assert retention_ttl_ddl("analytics.events", 30, {}) == []
