"""TrackFlow settings, read once from ``TRACKFLOW_*`` environment variables.

Every field here is documented in the README's configuration table with its default.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = Path("var/clickhouse").resolve()
ENV_PREFIX = "TRACKFLOW_"


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # Wiring
    app_id: str = "trackflow"
    broker_url: str = "kafka://127.0.0.1:9092"
    clickhouse_url: str = f"chdb://{DEFAULT_STORE}"
    clickhouse_table: str = "events"
    # A ClickHouse cluster's name (remote_servers): the schema is made ON CLUSTER with Replicated
    # tables behind Distributed ones (schemas/ddl.py cluster_schema_ddl). Empty: a single node.
    clickhouse_cluster: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")
    # Linux nice value of the embedded chDB engine's merge threads (0: ClickHouse's default).
    chdb_merge_nice: int = Field(default=10, ge=0, le=19)
    # How many merges the embedded chDB engine runs at once, one per thread (0: its default,
    # four merges on two threads).
    chdb_merges_at_once: int = Field(default=0, ge=0, le=16)
    # How long the embedded chDB engine's allocator keeps pages it freed before returning them
    # to the system (jemalloc dirty_decay_ms; chDB's own build keeps them 5000 ms).
    chdb_dirty_decay_ms: int = Field(default=1000, ge=0)
    web_bind: str = "127.0.0.1"
    web_port: int = 6066
    datadir: str = "var/faust"
    event_loop: str = Field(default="uvloop", pattern="^(uvloop|aio)$")
    log_format: str = Field(default="text", pattern="^(text|json)$")
    log_level: str = Field(default="info", pattern="(?i)^(debug|info|warning|error)$")
    # Young-generation GC threshold once the worker is up (Python's default is 700); 0 keeps
    # Python's garbage-collector settings as they are (see trackflow_app/gc_tuning.py).
    gc_gen0_threshold: int = Field(default=20_000, ge=0)
    # Log the event loop's stack when it has not run for this long, and garbage collections that
    # pause it this long (trackflow_app/loop_watch.py); 0 turns the watch off.
    loop_stall_ms: int = Field(default=250, ge=0)
    # Log accepted POSTs slower than this, with the time each step took; 0: never.
    slow_request_ms: int = Field(default=1000, ge=0)

    # Tenants: ingest keys are public (embedded in pages); read keys are secrets.
    api_keys: str = ""
    read_keys: str = ""  # "tenant:secret,tenant2:secret2"

    # Topics
    raw_topic: str = "trackflow-raw"
    processed_topic: str = "trackflow-processed"
    dead_letter_topic: str = "trackflow-dead-letter"
    raw_partitions: int = Field(default=4, ge=1)
    processed_partitions: int = Field(default=4, ge=1)
    dead_letter_partitions: int = Field(default=1, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # Replicas that must hold a write before Kafka acknowledges it (acks=all); 0: 2 when the
    # topics are replicated, else 1.
    min_insync_replicas: int = Field(default=0, ge=0)
    # How soon a crashed worker's partitions move to the others (consumer group session).
    session_timeout_s: float = Field(default=10.0, ge=6.0)

    # Edge limits
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_decompressed_bytes: int = Field(default=4_194_304, ge=1024)
    max_events_per_batch: int = Field(default=500, ge=1)
    trusted_proxies: str = ""  # comma-separated IPs/CIDRs whose X-Forwarded-For is believed
    rate_limit_per_ip: str = "100/second;3000/minute"  # requests; "" disables
    rate_limit_per_tenant: str = "20000/second"  # events; "" disables
    # "group": each worker enforces 1/N of a tenant's limit (N: workers in the consumer group);
    # "worker": each worker enforces all of it.
    rate_limit_scope: str = Field(default="group", pattern="^(group|worker)$")
    allowed_origins: dict[str, list[str]] = Field(default_factory=dict)  # JSON: tenant -> origins
    anonymize_ip: bool = False
    body_timeout_s: float = Field(default=30.0, gt=0)
    # A connection is closed when a request's headers have not arrived this long after it
    # opened, or when it sat idle this long between requests (slow-header clients).
    http_idle_timeout_s: float = Field(default=15.0, gt=0)
    produce_timeout_s: float = Field(default=10.0, gt=0)
    # Edge group commit: POSTs within this window share one raw record (0: a record each),
    # up to this many bytes of raw batches per record.
    edge_group_window_ms: float = Field(default=2.0, ge=0, le=1000)
    edge_group_max_bytes: int = Field(default=262_144, ge=1024)
    retry_after_s: int = Field(default=5, ge=1)

    # Validation
    max_string_length: int = Field(default=2048, ge=16)
    max_stack_length: int = Field(default=16384, ge=16)
    max_properties: int = Field(default=64, ge=1)
    # Free-form properties, counted across nesting: keys (each becomes a path in the store's
    # JSON column) and characters of keys and strings.
    max_property_keys: int = Field(default=256, ge=1)
    max_property_chars: int = Field(default=32_768, ge=256)
    retention_days: int = Field(default=365, ge=1)
    max_future_skew_s: int = Field(default=86_400, ge=0)
    skew_tolerance_ms: int = Field(default=60_000, ge=0)
    geoip_database: str = ""

    # Validate stage batching (raw batches per fan-out round)
    validate_batch_max: int = Field(default=200, ge=1)
    validate_batch_within_s: float = Field(default=0.02, gt=0)
    validate_round_max_bytes: int = Field(default=1_048_576, ge=1024)
    # The raw topic's consumer: each fetch waits for this much data, or at most this long.
    raw_fetch_min_bytes: int = Field(default=32_768, ge=1)
    # Under load the minimum fills first (~20 ms at 3,600 ev/s); the wait sets how often an idle
    # worker polls: every 20 ms cost it ~15 ms of CPU a second more, and the broker ~20.
    raw_fetch_max_wait_ms: int = Field(default=100, ge=0)
    # Raw records fetched ahead of the validate stage (Faust's stream buffers). A worker catching
    # up on a backlog holds about this many in memory: Faust's 4,096 grew with the backlog.
    raw_buffer_records: int = Field(default=256, ge=1)
    # Kafka's consumer on the worker's event loop, or on a thread and loop of its own (Faust's).
    kafka_consumer_in_loop: bool = True
    # How long the producer holds a partition's records to send more of them per request.
    producer_linger_ms: int = Field(default=5, ge=0)
    # Compression of the batches the worker's producer writes (raw, processed, dead letters):
    # 3-6x fewer bytes per event on the brokers' disks and between them, for 2-15 CPU-µs per
    # event more in the worker (bench.compression_cost). Off: on one host bytes cost nothing.
    producer_compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "none"

    # Sink. A worker with sink_enabled=false runs the edge and the validate stage only and never
    # opens the store: the way to add ingest capacity next to the one worker that owns a chDB store.
    sink_enabled: bool = True
    sink_group: str = "trackflow-sink"
    sink_batch_size: int = Field(default=5000, ge=1)
    sink_window_s: float = Field(default=0.5, gt=0)
    sink_retry_max_s: float = Field(default=30.0, gt=0)
    sink_shutdown_flush_s: float = Field(default=20.0, ge=0)
    # How often the sink samples the store's merges and parts into /metrics (0: never).
    store_stats_interval_s: float = Field(default=5.0, ge=0)
    # /readyz answers 503 once a stage has held records uncommitted, or failed to write, this long.
    ready_stall_s: float = Field(default=60.0, gt=0)
    # Test-only: refuse inserts while this file exists (fault-injection seam, off by default).
    sink_fail_flag: str = ""

    @field_validator("clickhouse_url")
    @classmethod
    def _store_url_names_a_store(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("chdb", "http", "https"):
            # The value is not echoed: a server URL carries its password.
            raise ValueError(
                "must be chdb:///absolute/folder (embedded) or http(s)://host:port/database"
            )
        if scheme == "chdb" and not rest.startswith("/"):
            # clickhouse-connect would read chdb://var/clickhouse as folder "var" with a
            # database "clickhouse" that TrackFlow never creates.
            folder = rest.partition("?")[0]
            raise ValueError(
                "an embedded store is named by its absolute folder after three slashes, e.g. "
                f"chdb://{Path(folder).resolve()} for {folder} in the current folder"
            )
        return value

    @field_validator("read_keys")
    @classmethod
    def _read_keys_are_pairs(cls, value: str) -> str:
        for position, item in enumerate(_split_csv(value), start=1):
            tenant, sep, secret = item.partition(":")
            if not sep or not tenant.strip() or not secret.strip():
                # By position: the entry itself may be a secret.
                raise ValueError(
                    f"entry {position} of TRACKFLOW_READ_KEYS must be tenant:secret "
                    "(comma-separated pairs)"
                )
        return value

    @model_validator(mode="after")
    def _cluster_needs_a_server(self) -> Settings:
        if self.clickhouse_cluster and self.clickhouse_url.startswith("chdb://"):
            raise ValueError(
                "TRACKFLOW_CLICKHOUSE_CLUSTER needs a ClickHouse server: set"
                " TRACKFLOW_CLICKHOUSE_URL to http(s)://... (embedded chDB is a single node)"
            )
        return self

    @model_validator(mode="after")
    def _min_isr_fits(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"TRACKFLOW_MIN_INSYNC_REPLICAS={self.min_insync_replicas} exceeds "
                f"TRACKFLOW_REPLICATION_FACTOR={self.replication_factor}: no write could succeed"
            )
        return self

    @property
    def min_isr(self) -> int:
        """min.insync.replicas of the topics: the setting, else min(2, replication factor)."""
        return self.min_insync_replicas or min(2, self.replication_factor)

    @cached_property
    def tenant_keys(self) -> frozenset[str]:
        return frozenset(_split_csv(self.api_keys))

    @cached_property
    def read_secrets(self) -> dict[str, str]:
        """Map read secret -> tenant id."""
        pairs = (item.split(":", 1) for item in _split_csv(self.read_keys))
        return {secret.strip(): tenant.strip() for tenant, secret in pairs if secret.strip()}

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(
            ipaddress.ip_network(p, strict=False) for p in _split_csv(self.trusted_proxies)
        )

    @property
    def store_on_this_worker(self) -> bool:
        """Whether this process may open the store: chDB allows one process, a server many."""
        return self.sink_enabled or not self.clickhouse_url.startswith("chdb://")

    @property
    def kafka_bootstrap(self) -> str:
        """Broker URL(s) in aiokafka's host:port form (Faust accepts kafka://h1:p1;h2:p2)."""
        hosts = self.broker_url.replace("kafka://", "").replace(";", ",")
        return ",".join(h.strip().rstrip("/") for h in hosts.split(",") if h.strip())


def load_settings() -> Settings:
    """The settings from the environment. A value that is not valid ends the process with a line
    per problem naming its variable, instead of a traceback from deep in Faust's app import."""
    try:
        return Settings()
    except ValidationError as exc:
        sys.exit("\n".join(settings_problems(exc)))


def settings_problems(error: ValidationError) -> list[str]:
    """One line per problem, naming the variable but not echoing its value (it may be a key)."""
    lines = []
    for problem in error.errors(include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        if problem["loc"]:
            variable = f"TRACKFLOW_{str(problem['loc'][0]).upper()}"
            lines.append(f"TrackFlow: {variable} is not valid: {message}")
        else:  # a check across settings: its message names them
            lines.append(f"TrackFlow: {message}")
    return lines


def faust_overrides(faust_settings: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """A line for each variable that would override a Faust setting TrackFlow sets itself.
    Faust reads ``TRACKFLOW_<SETTING>`` for every setting and lets it win over the app's own
    values; where a TrackFlow setting has the same name, both read the same value."""
    lines = []
    for name in faust_settings:
        variable = f"{ENV_PREFIX}{name.upper()}"
        if variable in environ and name not in Settings.model_fields:
            lines.append(
                f"TrackFlow: {variable} would change Faust's {name}, which TrackFlow sets itself "
                "(see the README's Configuration table for TrackFlow's variables): unset it"
            )
    return lines
