"""bench.merge_memory's copy of the events table with settings added."""

import pytest

from bench.merge_memory import table_copy_ddl

CREATE = (
    "CREATE TABLE default.events (`a` UInt8) ENGINE = ReplacingMergeTree ORDER BY a "
    "SETTINGS index_granularity = 8192, merge_selector_base = 10"
)


def test_the_copy_gets_its_name_and_the_settings_in_front() -> None:
    ddl = table_copy_ddl(CREATE, "events", "events_copy", {"index_granularity_bytes": "2097152"})
    assert ddl == (
        "CREATE TABLE default.events_copy (`a` UInt8) ENGINE = ReplacingMergeTree ORDER BY a "
        "SETTINGS index_granularity_bytes = 2097152, index_granularity = 8192, "
        "merge_selector_base = 10"
    )


def test_a_table_without_settings_gets_a_settings_clause() -> None:
    ddl = table_copy_ddl(
        "CREATE TABLE db.events (`a` UInt8) ENGINE = Log", "events", "c", {"x": "1"}
    )
    assert ddl == "CREATE TABLE db.c (`a` UInt8) ENGINE = Log SETTINGS x = 1"


def test_another_table_is_refused() -> None:
    with pytest.raises(ValueError, match="no table"):
        table_copy_ddl(CREATE, "sessions", "c", {"x": "1"})
