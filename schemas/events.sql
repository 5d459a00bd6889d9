-- TrackFlow's events table: the seed's schema, with these departures (see README "Storage"):
--  * ENGINE ReplacingMergeTree on the seed's ORDER BY (which ends in event_id): an event
--    delivered twice (tracker retry, Kafka redelivery) collapses to one row on merge, and
--    queries with FINAL or uniqExact(event_id) count it once before the merge.
--  * The seed's idx_error_type / idx_performance carry a WHERE clause, which is not ClickHouse
--    syntax; one set(10) index on event_type (idx_event_type) serves both.
--  * Added columns: client_timestamp (the client's clock as sent; `timestamp` holds the
--    skew-corrected time), seq (tracker's per-session sequence number, for loss counting),
--    user_agent (server-side context), inserted_at (when the sink wrote the row).
--  * is_bot: the validate stage's verdict on the batch's User-Agent (agents/bots.py); the read
--    API leaves such rows out unless asked (include_bots). A table made before it existed gets
--    it by ALTER TABLE ... ADD COLUMN (migration 4); rows stored before then read false.
--  * Columns the store computes on insert (MATERIALIZED), so that reads skip hashing strings and
--    parsing JSON: session_key/user_key are the 128-bit SipHash of session_id/user_id, the same
--    key uniqExact builds from a String (counting them is as exact as counting the strings);
--    error_fingerprint is the error group's hash of message, source and line (0 for others);
--    referrer_host is the referrer's host (the referrer itself when it has none) and
--    referrer_internal marks a referrer on the page's own host; load_time/dom_content_loaded are
--    a performance event's two timings as numbers.
--    A table made before they existed gets them by ALTER TABLE ... ADD COLUMN (migrations 1-2).
--  * page_url, device_type, os, browser and country are stored LowCardinality (a dictionary per
--    part): the same strings, read and grouped by their dictionary position. A table made with
--    plain String columns is converted by ALTER TABLE ... MODIFY COLUMN (migration 3).
--  * properties holds at most 64 JSON paths as their own columns per part (the rest share one
--    structure): the files a part opens no longer grow with the number of distinct keys, which
--    let one batch of many keys fail with "Too many open files". A table made with the plain
--    JSON type is converted by ALTER TABLE ... MODIFY COLUMN (migration 7).
--  * non_replicated_deduplication_window: an insert repeated with the same deduplication token
--    (the sink derives it from the Kafka offsets of the rows) is dropped, so a batch inserted
--    again after a crash or a retry is not stored twice. A table made without it gets it by
--    ALTER TABLE ... MODIFY SETTING (migration 8).
--  * Merge settings for the sink's small, frequent inserts (two parts a second): merges take
--    about ten parts of a size at once (merge_selector_base = 10, ClickHouse's is 5), so each
--    row is rewritten fewer times (a third fewer merged rows, about half the merge CPU per
--    stored row, bench/tuning.md "chDB memory and insert cost"); and every merge is vertical
--    (a column at a time, not every column's buffers at once), which ClickHouse otherwise keeps
--    for merges of 131,072 rows or more: the peak memory of merges falls by ~70 MB. A table made
--    without them gets them by ALTER TABLE ... MODIFY SETTING (migration 9).
--  * Compressed blocks of 16-128 KiB (ClickHouse's are 64 KiB-1 MiB): a merge keeps a block's
--    buffers for every column stream of every part it reads, and the JSON column has a stream
--    per path, so one merge of 15 parts needs ~50 MB less (bench/tuning.md "Smaller compressed
--    blocks") for ~3 % more bytes on disk. A table made without them gets them by ALTER TABLE
--    ... MODIFY SETTING (migration 10).
-- A store made by an earlier TrackFlow reaches this layout through the numbered migrations of
-- schemas/migrations.py: a change here needs one there (tests/integration/test_migrations.py
-- compares a store upgraded from the first layout with a new one).
CREATE TABLE IF NOT EXISTS {table} (
    event_id UUID,
    event_type Enum8('page_view' = 1, 'click' = 2, 'error' = 3, 'performance' = 4),
    timestamp DateTime64(3, 'UTC'),
    tenant_id String,
    session_id String,
    user_id Nullable(String),
    page_url LowCardinality(String),
    referrer Nullable(String),
    device_type LowCardinality(String),
    os LowCardinality(String),
    browser LowCardinality(String),
    ip_address Nullable(String),
    country LowCardinality(Nullable(String)),
    region Nullable(String),
    city Nullable(String),
    properties JSON(max_dynamic_paths=64, max_dynamic_types=8),
    received_at DateTime64(3, 'UTC') DEFAULT now(),
    client_timestamp DateTime64(3, 'UTC'),
    seq Nullable(UInt32),
    user_agent String,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    is_bot Bool DEFAULT false,
    session_key UInt128 MATERIALIZED reinterpretAsUInt128(sipHash128(session_id)),
    user_key Nullable(UInt128) MATERIALIZED if(user_id IS NULL, NULL, reinterpretAsUInt128(sipHash128(assumeNotNull(user_id)))),
    error_fingerprint UInt64 MATERIALIZED if(event_type = 'error', cityHash64(toString(properties.message), toString(properties.source), toString(properties.line)), 0),
    referrer_host String MATERIALIZED if(domain(ifNull(referrer, '')) = '', ifNull(referrer, ''), domain(ifNull(referrer, ''))),
    referrer_internal UInt8 MATERIALIZED domain(ifNull(referrer, '')) != '' AND domain(ifNull(referrer, '')) = domain(page_url),
    load_time Nullable(Float64) MATERIALIZED if(event_type = 'performance', toFloat64OrNull(toString(properties.loadTime)), NULL),
    dom_content_loaded Nullable(Float64) MATERIALIZED if(event_type = 'performance', toFloat64OrNull(toString(properties.domContentLoaded)), NULL),
    INDEX idx_tenant_type_time (tenant_id, event_type, timestamp) TYPE minmax,
    INDEX idx_session (session_id) TYPE bloom_filter,
    INDEX idx_user (user_id) TYPE bloom_filter,
    INDEX idx_event_type (event_type) TYPE set(10)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, toStartOfHour(timestamp), event_type, event_id)
PARTITION BY toYYYYMM(timestamp)
TTL timestamp + INTERVAL {retention_days} DAY
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000, merge_selector_base = 10, vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1, min_compress_block_size = 16384, max_compress_block_size = 131072
