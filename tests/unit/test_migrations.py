"""schemas.migrations: the numbered migrations from a seed-era table to today's layout, and the
retention TTL kept in step with the setting. The engine runs them in
tests/integration/test_migrations.py and test_store_migration.py."""

from __future__ import annotations

import re

import pytest

from schemas.ddl import events_table_ddl, session_hours_ddl
from schemas.migrations import (
    FILL_SESSION_HOURS,
    MIGRATIONS,
    Layout,
    SchemaSettings,
    pending_migrations,
    retention_ttl_ddl,
    stored_ttl_intervals,
)
from tests.unit.test_ddl import COMPUTED, DDL, LOW_CARDINALITY, SEED_COLUMNS, column_lines

# The seed's table as system.columns shows it (TrackFlow's first events.sql).
SEED = Layout(
    events={
        **SEED_COLUMNS,
        "client_timestamp": "DateTime64(3, 'UTC')",
        "seq": "Nullable(UInt32)",
        "user_agent": "String",
        "inserted_at": "DateTime64(3, 'UTC')",
    }
)


def statements(
    number: int, layout: Layout, table: str = "analytics.events", retention_days: int = 365
) -> list[str]:
    [migration] = [m for m in MIGRATIONS if m.number == number]
    return migration.statements(table, SchemaSettings(retention_days), layout)


def one_line(sql: str) -> str:
    """``sql`` with its whitespace as one space, none inside parentheses' edges."""
    return re.sub(r"\s+", " ", sql).replace("( ", "(").replace(" )", ")").strip()


def test_migrations_are_numbered_in_order_under_distinct_names() -> None:
    assert [m.number for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len({m.name for m in MIGRATIONS}) == len(MIGRATIONS)
    # Stores made before the migrations recorded the rollup's fill under this name (and the
    # README's rebuild deletes it by this name).
    assert FILL_SESSION_HOURS == "fill session_hours"
    assert [m.name for m in MIGRATIONS if m.moves_rows] == [FILL_SESSION_HOURS]


def test_pending_migrations_leave_out_the_recorded_ones_in_order() -> None:
    pending = pending_migrations({FILL_SESSION_HOURS, "bot flag", "an unknown step"})
    assert [m.number for m in pending] == [1, 2, 3, 5, 7, 8, 9, 10]
    assert pending_migrations({m.name for m in MIGRATIONS}) == []


def test_older_tables_get_the_computed_columns_by_alter() -> None:
    added = [statement for number in (1, 2, 4) for statement in statements(number, SEED)]
    assert [s.split()[8] for s in added] == [*COMPUTED, "is_bot"]
    columns = column_lines(DDL)
    for statement in added:
        assert statement.startswith("ALTER TABLE analytics.events ADD COLUMN IF NOT EXISTS ")
        name, definition = statement.split()[8], statement.split(maxsplit=9)[9]
        assert columns[name] == definition.removesuffix(" AFTER inserted_at")
    current = Layout(events=dict.fromkeys(columns, "?"))
    assert [statements(number, current) for number in (1, 2, 4)] == [[], [], []]
    with pytest.raises(ValueError, match="invalid ClickHouse table name"):
        statements(1, SEED, "events; DROP TABLE x")


def test_bot_flag_is_added_with_a_default_for_older_rows_where_a_new_table_has_it() -> None:
    assert statements(4, SEED, "events") == [
        "ALTER TABLE events ADD COLUMN IF NOT EXISTS is_bot Bool DEFAULT false AFTER inserted_at"
    ]
    names = list(column_lines(DDL))
    assert names[names.index("is_bot") - 1] == "inserted_at"


def test_older_tables_get_low_cardinality_columns_by_alter() -> None:
    seed_types = {name: SEED_COLUMNS[name] for name in LOW_CARDINALITY}
    found = statements(3, Layout(events={**seed_types, "tenant_id": "String"}))
    assert found == [
        f"ALTER TABLE analytics.events MODIFY COLUMN {name} LowCardinality({seed_types[name]})"
        for name in LOW_CARDINALITY
    ]
    for statement in found:
        assert column_lines(DDL)[statement.split()[5]] == statement.split(maxsplit=6)[6]
    current = {name: f"LowCardinality({sql_type})" for name, sql_type in seed_types.items()}
    assert statements(3, Layout(events=current), "events") == []  # already converted
    assert statements(3, Layout(events={"os": "Nullable(String)"}), "events") == []  # not ours
    with pytest.raises(ValueError, match="invalid ClickHouse table name"):
        statements(3, Layout(), "events; DROP TABLE x")


def test_older_tables_get_bounded_properties_and_the_deduplication_window() -> None:
    [bounded] = statements(7, SEED)
    assert bounded == (
        "ALTER TABLE analytics.events MODIFY COLUMN properties " + column_lines(DDL)["properties"]
    )
    # system.columns lists the parameters in another order: already bounded.
    bounded_type = "JSON(max_dynamic_types=8, max_dynamic_paths=64)"
    assert statements(7, Layout(events={"properties": bounded_type})) == []
    setting = "non_replicated_deduplication_window = 1000"
    assert setting in DDL
    seed_engine = "ReplacingMergeTree ORDER BY x SETTINGS index_granularity = 8192"
    assert statements(8, Layout(engines={"events": seed_engine})) == [
        f"ALTER TABLE analytics.events MODIFY SETTING {setting}"
    ]
    for window in ("1000", "50"):  # a new table's, or one an operator set since
        engine = f"{seed_engine}, non_replicated_deduplication_window = {window}"
        assert statements(8, Layout(engines={"events": engine})) == []


def test_a_store_without_the_rollup_gets_todays_rollup_and_view() -> None:
    table, view = session_hours_ddl("analytics.events", 30)
    made = statements(5, SEED, retention_days=30)
    assert [one_line(s) for s in made] == [one_line(table), one_line(view)]


def test_an_older_rollup_gets_the_bot_flag_last_in_its_key() -> None:
    table, view = session_hours_ddl("events")
    key = re.search(r"^ORDER BY \((.+)\)$", table, re.M)
    assert key is not None
    assert key.group(1).endswith(", user_key, is_bot")
    assert view.endswith(", session_key, user_key, is_bot FROM events")
    older = {"tenant_id": "String", "session_key": "UInt128"}
    add, modify = statements(5, Layout(rollup=older, view=older))
    assert add == (
        "ALTER TABLE analytics.events_session_hours ADD COLUMN IF NOT EXISTS is_bot Bool,"
        f" MODIFY ORDER BY ({key.group(1)})"
    )
    assert modify == (
        "ALTER TABLE analytics.events_session_hours_mv MODIFY QUERY "
        + view.split("\n", 1)[1].replace(" FROM events", " FROM analytics.events")
    )
    current = {**older, "is_bot": "Bool"}
    assert statements(5, Layout(rollup=current, view=older)) == [modify]  # cut short
    assert statements(5, Layout(rollup=current, view=current)) == []  # repeated
    # A rollup whose view was never made gets today's.
    [create_view] = statements(5, Layout(rollup=current))
    assert one_line(create_view) == one_line(session_hours_ddl("analytics.events")[1])


def test_the_fill_writes_what_the_view_writes() -> None:
    [fill] = statements(6, Layout())
    _, view = session_hours_ddl("analytics.events")
    assert fill.startswith("INSERT INTO analytics.events_session_hours SELECT DISTINCT tenant_id,")
    assert fill.split(" SELECT ", 1)[1] == view.split("\nSELECT ", 1)[1]
    assert "{" not in fill


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
    assert "TTL timestamp + INTERVAL 30 DAY" in events_table_ddl("events", 30)


def test_older_tables_get_the_merge_settings_for_small_inserts() -> None:
    merge = (
        "merge_selector_base = 10, vertical_merge_algorithm_min_rows_to_activate = 1,"
        " vertical_merge_algorithm_min_columns_to_activate = 1"
    )
    assert merge in DDL  # the migration adds what a new table has, in its order
    seed_engine = "ReplacingMergeTree ORDER BY x SETTINGS index_granularity = 8192"
    assert statements(9, Layout(engines={"events": seed_engine})) == [
        f"ALTER TABLE analytics.events MODIFY SETTING {merge}"
    ]
    assert statements(9, Layout(engines={"events": f"{seed_engine}, {merge}"})) == []
    chosen = f"{seed_engine}, merge_selector_base = 4"  # an operator's own choice is kept
    assert statements(9, Layout(engines={"events": chosen})) == [
        "ALTER TABLE analytics.events MODIFY SETTING"
        " vertical_merge_algorithm_min_rows_to_activate = 1,"
        " vertical_merge_algorithm_min_columns_to_activate = 1"
    ]


def test_older_tables_get_the_smaller_compressed_blocks() -> None:
    blocks = "min_compress_block_size = 16384, max_compress_block_size = 131072"
    assert blocks in DDL
    seed_engine = "ReplacingMergeTree ORDER BY x SETTINGS index_granularity = 8192"
    assert statements(10, Layout(engines={"events": seed_engine})) == [
        f"ALTER TABLE analytics.events MODIFY SETTING {blocks}"
    ]
    assert statements(10, Layout(engines={"events": f"{seed_engine}, {blocks}"})) == []
    chosen = f"{seed_engine}, max_compress_block_size = 1048576"
    assert statements(10, Layout(engines={"events": chosen})) == [
        "ALTER TABLE analytics.events MODIFY SETTING min_compress_block_size = 16384"
    ]
