"""schemas.ddl: the events table DDL against the seed's schema."""

from __future__ import annotations

import re

import pytest

from schemas.ddl import (
    EVENT_COLUMNS,
    INPUT_SOURCE,
    RECORD_TIME_COLUMNS,
    event_column_types,
    events_table_ddl,
    record_insert_sql,
    record_structure,
    session_hours_ddl,
    sql_string,
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
    assert "{" not in table + view
    with pytest.raises(ValueError, match="invalid ClickHouse table name"):
        session_hours_ddl("events; DROP TABLE x")


def test_bot_flag_is_inserted_with_a_default_for_older_rows() -> None:
    assert column_lines(DDL)["is_bot"] == "Bool DEFAULT false"
    assert "is_bot" in EVENT_COLUMNS


def test_retention_days_set_both_ttls() -> None:
    assert "TTL timestamp + INTERVAL 30 DAY\n" in events_table_ddl("events", 30)
    rollup, _view = session_hours_ddl("events", 30)
    assert "TTL hour + INTERVAL 30 DAY + INTERVAL 1 HOUR\n" in rollup
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="retention"):
            events_table_ddl("events", bad)


def test_event_column_types_come_from_the_table() -> None:
    types = event_column_types()
    assert list(types) == list(EVENT_COLUMNS)
    for name, type_ in types.items():
        assert f"    {name} {type_}" in events_table_ddl()
    assert types["properties"].startswith("JSON(") and types["seq"] == "Nullable(UInt32)"


def test_a_record_is_read_with_its_times_in_milliseconds() -> None:
    structure = record_structure()
    for name in EVENT_COLUMNS:
        expected = "Nullable(Int64)" if name in RECORD_TIME_COLUMNS else event_column_types()[name]
        assert f"{name} {expected}" in structure
    assert "DateTime64" not in structure


@pytest.mark.parametrize(
    ("text", "literal"), [("a", "'a'"), ("it's", "'it\\'s'"), ("a\\b", "'a\\\\b'")]
)
def test_sql_string_escapes_quotes_and_backslashes(text: str, literal: str) -> None:
    assert sql_string(text) == literal


def test_record_insert_from_a_file_and_from_the_request_body() -> None:
    from_file = record_insert_sql(
        "events", "/tmp/it's.jsonl", {"insert_deduplication_token": "t'1"}
    )
    assert from_file.startswith(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT ")
    assert "FROM file('/tmp/it\\'s.jsonl', 'JSONEachRow', " in from_file
    assert from_file.endswith("SETTINGS insert_deduplication_token = 't\\'1'")
    assert "fromUnixTimestamp64Milli(assumeNotNull(received_at), 'UTC')" in from_file
    from_body = record_insert_sql("db.events", INPUT_SOURCE)
    assert "FROM input('event_id UUID, " in from_body and from_body.endswith(" FORMAT JSONEachRow")
    assert "SETTINGS" not in from_body


def test_record_insert_refuses_unsafe_names() -> None:
    with pytest.raises(ValueError):
        record_insert_sql("events; DROP TABLE x", INPUT_SOURCE)
    with pytest.raises(ValueError):
        record_insert_sql("events", INPUT_SOURCE, {"a = 1, b": "2"})
