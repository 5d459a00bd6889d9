"""The numbered migrations that bring a store made by an earlier TrackFlow to the layout of
``events.sql`` and ``session_hours.sql``, and the retention TTL kept in step with the setting.

Each migration is one change the layout went through, in the order the store applies them; its
statements are written out in full (not derived from today's .sql files), so a later edit of a
template cannot change what an old store goes through. A migration looks at the store's layout
first and returns no statement for what is already there: a store made before migrations were
recorded, or by a line of development that had some changes before others, gets those
migrations recorded without anything being altered. ``trackflow_app/store.py`` runs the ones
not recorded in ``<table>_schema_steps`` (by name) and records each after its statements.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from schemas.ddl import (
    DEFAULT_RETENTION_DAYS,
    checked_days,
    checked_table,
    session_hours_table,
    session_hours_view,
    ttl_expression,
)


@dataclass(frozen=True)
class SchemaSettings:
    """The settings the statements depend on."""

    retention_days: int = DEFAULT_RETENTION_DAYS


@dataclass(frozen=True)
class Layout:
    """A store's tables as the engine shows them: column name -> type (system.columns) of the
    events table, its rollup and the rollup's view (empty for a table that does not exist), and
    table name -> engine_full (system.tables) in the store's database."""

    events: Mapping[str, str] = field(default_factory=dict)
    rollup: Mapping[str, str] = field(default_factory=dict)
    view: Mapping[str, str] = field(default_factory=dict)
    engines: Mapping[str, str] = field(default_factory=dict)


Statements = Callable[[str, SchemaSettings, Layout], list[str]]


@dataclass(frozen=True)
class Migration:
    number: int
    name: str  # what <table>_schema_steps records
    statements: Statements
    # Writes rows rather than changing the layout, so it also runs on a store made at today's
    # layout (a cluster) when not yet recorded.
    moves_rows: bool = False


def _added_columns(*definitions: str) -> Statements:
    def statements(table: str, settings: SchemaSettings, layout: Layout) -> list[str]:
        checked = checked_table(table)
        return [
            f"ALTER TABLE {checked} ADD COLUMN IF NOT EXISTS {definition}"
            for definition in definitions
            if definition.split(" ", 1)[0] not in layout.events
        ]

    return statements


def _retyped_columns(changes: Mapping[str, tuple[str, str]]) -> Statements:
    """column -> (type it had, type it gets); a column of another type is left alone."""

    def statements(table: str, settings: SchemaSettings, layout: Layout) -> list[str]:
        checked = checked_table(table)
        return [
            f"ALTER TABLE {checked} MODIFY COLUMN {name} {new}"
            for name, (old, new) in changes.items()
            if layout.events.get(name) == old
        ]

    return statements


_ROLLUP_KEY = "tenant_id, hour, device_type, os, browser, country, session_key, user_key, is_bot"
_ROLLUP_SELECT = (
    "SELECT DISTINCT tenant_id, toStartOfHour(timestamp) AS hour, device_type, os, browser,"
    " country, session_key, user_key, is_bot FROM {table}"
)


def _rollup_ddl(rollup: str, retention_days: int) -> str:
    # The setting's TTL (TrackFlow first wrote a fixed year): nothing for the retention to redo.
    return (
        f"CREATE TABLE IF NOT EXISTS {rollup} (tenant_id String, hour DateTime('UTC'),"
        " device_type LowCardinality(String), os LowCardinality(String),"
        " browser LowCardinality(String), country LowCardinality(Nullable(String)),"
        " session_key UInt128, user_key Nullable(UInt128), is_bot Bool)"
        f" ENGINE = ReplacingMergeTree() ORDER BY ({_ROLLUP_KEY}) PARTITION BY toYYYYMM(hour)"
        f" TTL hour + INTERVAL {checked_days(retention_days)} DAY + INTERVAL 1 HOUR"
        " SETTINGS allow_nullable_key = 1"
    )


def _session_hours_rollup(table: str, settings: SchemaSettings, layout: Layout) -> list[str]:
    """The rollup and its view with is_bot. TrackFlow made them without it before the bot flag:
    such a rollup gets the column last in its sorting key (ClickHouse takes a new key column
    only in the ALTER that adds it, and without a DEFAULT; its rows read false), then its view
    the query that fills it. A rollup made here gets it from the start, so that its primary
    key, which no ALTER can extend, is a new store's."""
    rollup, view = session_hours_table(table), session_hours_view(table)
    select = _ROLLUP_SELECT.format(table=checked_table(table))
    statements = []
    if not layout.rollup:
        statements.append(_rollup_ddl(rollup, settings.retention_days))
    elif "is_bot" not in layout.rollup:
        statements.append(
            f"ALTER TABLE {rollup} ADD COLUMN IF NOT EXISTS is_bot Bool,"
            f" MODIFY ORDER BY ({_ROLLUP_KEY})"
        )
    if not layout.view:
        statements.append(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {rollup} AS {select}")
    elif "is_bot" not in layout.view:
        statements.append(f"ALTER TABLE {view} MODIFY QUERY {select}")
    return statements


def _fill_session_hours(table: str, settings: SchemaSettings, layout: Layout) -> list[str]:
    """The rollup's rows for the events stored before its view existed. Cut short, it is
    redone in full: repeated rollup rows change no distinct count."""
    select = _ROLLUP_SELECT.format(table=checked_table(table))
    return [f"INSERT INTO {session_hours_table(table)} {select}"]


_DEDUP_WINDOW = re.compile(r"\bnon_replicated_deduplication_window = ")


def _dedup_window(table: str, settings: SchemaSettings, layout: Layout) -> list[str]:
    """A window already set (a new table's, or one an operator chose) is kept."""
    checked = checked_table(table)
    if _DEDUP_WINDOW.search(layout.engines.get(checked.rpartition(".")[2], "")):
        return []
    return [f"ALTER TABLE {checked} MODIFY SETTING non_replicated_deduplication_window = 1000"]


def _table_settings(*wanted: tuple[str, int]) -> Statements:
    """Statements giving the table the ``wanted`` settings it does not have; one already set (a
    new table's, or one an operator chose) is kept. ``wanted`` in the order a new table lists
    them (events.sql)."""

    def statements(table: str, settings: SchemaSettings, layout: Layout) -> list[str]:
        checked = checked_table(table)
        engine = layout.engines.get(checked.rpartition(".")[2], "")
        missing = [
            f"{name} = {value}" for name, value in wanted if not re.search(rf"\b{name} = ", engine)
        ]
        return [f"ALTER TABLE {checked} MODIFY SETTING {', '.join(missing)}"] if missing else []

    return statements


FILL_SESSION_HOURS = "fill session_hours"  # the name stores recorded before migrations were

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "session and user keys, error fingerprint",
        _added_columns(
            "session_key UInt128 MATERIALIZED reinterpretAsUInt128(sipHash128(session_id))",
            "user_key Nullable(UInt128) MATERIALIZED if(user_id IS NULL, NULL,"
            " reinterpretAsUInt128(sipHash128(assumeNotNull(user_id))))",
            "error_fingerprint UInt64 MATERIALIZED if(event_type = 'error',"
            " cityHash64(toString(properties.message), toString(properties.source),"
            " toString(properties.line)), 0)",
        ),
    ),
    Migration(
        2,
        "referrer host and performance timings",
        _added_columns(
            "referrer_host String MATERIALIZED if(domain(ifNull(referrer, '')) = '',"
            " ifNull(referrer, ''), domain(ifNull(referrer, '')))",
            "referrer_internal UInt8 MATERIALIZED domain(ifNull(referrer, '')) != ''"
            " AND domain(ifNull(referrer, '')) = domain(page_url)",
            "load_time Nullable(Float64) MATERIALIZED if(event_type = 'performance',"
            " toFloat64OrNull(toString(properties.loadTime)), NULL)",
            "dom_content_loaded Nullable(Float64) MATERIALIZED if(event_type = 'performance',"
            " toFloat64OrNull(toString(properties.domContentLoaded)), NULL)",
        ),
    ),
    Migration(
        3,
        "low-cardinality dimensions",
        _retyped_columns(
            {
                "page_url": ("String", "LowCardinality(String)"),
                "device_type": ("String", "LowCardinality(String)"),
                "os": ("String", "LowCardinality(String)"),
                "browser": ("String", "LowCardinality(String)"),
                "country": ("Nullable(String)", "LowCardinality(Nullable(String))"),
            }
        ),
    ),
    # AFTER: the place events.sql gives it, so an upgraded table lists its columns in the
    # order of a new one.
    Migration(4, "bot flag", _added_columns("is_bot Bool DEFAULT false AFTER inserted_at")),
    Migration(5, "session_hours rollup", _session_hours_rollup),  # its view reads is_bot
    Migration(6, FILL_SESSION_HOURS, _fill_session_hours, moves_rows=True),
    Migration(
        7,
        "bounded properties paths",
        _retyped_columns(
            {"properties": ("JSON", "JSON(max_dynamic_paths=64, max_dynamic_types=8)")}
        ),
    ),
    Migration(8, "insert deduplication window", _dedup_window),
    Migration(
        9,
        "merge settings for small inserts",
        _table_settings(
            ("merge_selector_base", 10),
            ("vertical_merge_algorithm_min_rows_to_activate", 1),
            ("vertical_merge_algorithm_min_columns_to_activate", 1),
        ),
    ),
    Migration(
        10,
        "smaller compressed blocks",
        _table_settings(("min_compress_block_size", 16384), ("max_compress_block_size", 131072)),
    ),
)


def pending_migrations(recorded: Collection[str]) -> list[Migration]:
    """The migrations not among the ``recorded`` names, in the order they are applied."""
    return sorted(
        (migration for migration in MIGRATIONS if migration.name not in recorded),
        key=lambda migration: migration.number,
    )


# -- retention --------------------------------------------------------------------------------
# Not a numbered migration: the TTL follows TRACKFLOW_RETENTION_DAYS, so it is compared with the
# setting at every start (after the migrations, which may have just made the rollup) and
# changed whenever they differ.
_TTL_CLAUSE = re.compile(r"\bTTL (.+?)(?= SETTINGS |$)")
_WRITTEN_INTERVAL = re.compile(r"\bINTERVAL (\d+) ([A-Z]+)\b")
_STORED_INTERVAL = re.compile(r"\btoInterval([A-Za-z]+)\((\d+)\)")


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
        checked_table(table): ttl_expression("events.sql", retention_days),
        session_hours_table(table): ttl_expression("session_hours.sql", retention_days),
    }
    statements = []
    for name, expression in wanted.items():
        current = engine_full.get(name.rpartition(".")[2])
        if current is None:
            continue
        if stored_ttl_intervals(current) != _written_intervals(expression):
            statements.append(f"ALTER TABLE {name} MODIFY TTL {expression}")
    return statements
