-- TrackFlow's events table: the seed's schema, with these departures (see README "Storage"):
--  * ENGINE ReplacingMergeTree on the seed's ORDER BY (which ends in event_id): an event
--    delivered twice (tracker retry, Kafka redelivery) collapses to one row on merge, and
--    queries with FINAL or uniqExact(event_id) count it once before the merge.
--  * The seed's idx_error_type / idx_performance carry a WHERE clause, which is not ClickHouse
--    syntax; one set(10) index on event_type (idx_event_type) serves both.
--  * Added columns: client_timestamp (the client's clock as sent; `timestamp` holds the
--    skew-corrected time), seq (tracker's per-session sequence number, for loss counting),
--    user_agent (server-side context), inserted_at (when the sink wrote the row).
CREATE TABLE IF NOT EXISTS {table} (
    event_id UUID,
    event_type Enum8('page_view' = 1, 'click' = 2, 'error' = 3, 'performance' = 4),
    timestamp DateTime64(3, 'UTC'),
    tenant_id String,
    session_id String,
    user_id Nullable(String),
    page_url String,
    referrer Nullable(String),
    device_type String,
    os String,
    browser String,
    ip_address Nullable(String),
    country Nullable(String),
    region Nullable(String),
    city Nullable(String),
    properties JSON,
    received_at DateTime64(3, 'UTC') DEFAULT now(),
    client_timestamp DateTime64(3, 'UTC'),
    seq Nullable(UInt32),
    user_agent String,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_tenant_type_time (tenant_id, event_type, timestamp) TYPE minmax,
    INDEX idx_session (session_id) TYPE bloom_filter,
    INDEX idx_user (user_id) TYPE bloom_filter,
    INDEX idx_event_type (event_type) TYPE set(10)
)
ENGINE = ReplacingMergeTree()
ORDER BY (tenant_id, toStartOfHour(timestamp), event_type, event_id)
PARTITION BY toYYYYMM(timestamp)
TTL timestamp + INTERVAL 1 YEAR
SETTINGS index_granularity = 8192
