-- The session-hour rollup: which sessions and users were active in each hour, by device, OS,
-- browser and country. Distinct session and user counts (traffic, breakdowns) read it for the
-- whole hours of a range instead of every event of those hours; the partial hours at the range's
-- ends are read from {table}.
--  * Filled on insert by the materialized view below, and once from the rows already in {table}
--    when the rollup is first made (migration 6 of schemas/migrations.py, "fill session_hours").
--  * A row here records only that a session was seen, so a repeated event or a repeated fill
--    adds nothing a distinct count could see; the ReplacingMergeTree folds such rows on merge.
--  * is_bot comes from the events (a session seen from a bot's User-Agent), so that distinct
--    counts can leave bots out. A rollup made before it existed gets it, last in the sorting key
--    and without a DEFAULT as ClickHouse requires there, and its view the query that fills it
--    (migration 5 of schemas/migrations.py); rows from before then read false.
--  * Kept one hour longer than the events, so that an hour is never missing here while some of
--    its events are still stored.
-- A change here needs a numbered migration in schemas/migrations.py for rollups made before it.
CREATE TABLE IF NOT EXISTS {table}_session_hours (
    tenant_id String,
    hour DateTime('UTC'),
    device_type LowCardinality(String),
    os LowCardinality(String),
    browser LowCardinality(String),
    country LowCardinality(Nullable(String)),
    session_key UInt128,
    user_key Nullable(UInt128),
    is_bot Bool
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, hour, device_type, os, browser, country, session_key, user_key, is_bot)
PARTITION BY toYYYYMM(hour)
TTL hour + INTERVAL {retention_days} DAY + INTERVAL 1 HOUR
SETTINGS allow_nullable_key = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_session_hours_mv TO {table}_session_hours AS
{select};
