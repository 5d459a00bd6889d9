"""ClickHouse access through clickhouse-connect: embedded chDB (``chdb://``) or a server (``http(s)://``).

chDB has no async client and is not safe to drive from several threads, so every call runs on
one dedicated thread; the event loop awaits it.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import clickhouse_connect

from schemas.ddl import (
    DEFAULT_RETENTION_DAYS,
    EVENT_COLUMNS,
    INPUT_SOURCE,
    cluster_schema_ddl,
    events_table_ddl,
    record_insert_sql,
    schema_steps_ddl,
    schema_steps_table,
    session_hours_ddl,
    session_hours_table,
    session_hours_view,
)
from schemas.migrations import (
    Layout,
    Migration,
    SchemaSettings,
    pending_migrations,
    retention_ttl_ddl,
)
from trackflow_app.limits import raise_open_files_limit

log = logging.getLogger(__name__)
T = TypeVar("T")
# On a cluster the sink inserts into the Distributed table; with this setting the insert returns
# only once every shard has its rows, so the sink commits offsets for stored rows only.
CLUSTER_CLIENT_SETTINGS = {"insert_distributed_sync": 1}


def describe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def chdb_engine_options(merge_nice: int, merges_at_once: int = 0) -> dict[str, int]:
    """Start-up options of the embedded engine: its merges run at this Linux nice value, and at
    most ``merges_at_once`` of them hold memory at the same time.

    Merges are background work that can wait; on a small host they would otherwise take CPU from
    the edge and the stages at the very moments load peaks. Each merge holds buffers for every
    part it reads (bench.merge_memory), and the engine runs up to four at once on its two merge
    threads. 0 keeps ClickHouse's default for either.
    """
    options = {"os_threads_nice_value_merge_mutate": merge_nice} if merge_nice else {}
    if merges_at_once:
        options["background_pool_size"] = merges_at_once
        options["background_merges_mutations_concurrency_ratio"] = 1
    return options


# chDB's allocator is a jemalloc built with the je_ prefix: it reads its options from this
# variable (not MALLOC_CONF) once, when the engine's library loads.
CHDB_ALLOCATOR_ENV = "JE_MALLOC_CONF"


def chdb_allocator_conf(dirty_decay_ms: int) -> str:
    """The engine's jemalloc options: pages it freed go back to the system after this long.

    chDB's build keeps them 5 s, which at the sink's cadence holds ~50-100 MB of freed insert
    and merge buffers resident; 0 returns them at once, at the CPU cost of faulting them in again.
    """
    return f"dirty_decay_ms:{dirty_decay_ms}"


def configure_chdb_allocator(
    dirty_decay_ms: int,
    environ: MutableMapping[str, str] = os.environ,
    loaded: bool | None = None,
) -> bool:
    """Set the engine's allocator options before its library loads. An operator's own
    JE_MALLOC_CONF is kept. False when the options cannot apply (theirs, or chDB loaded already)."""
    if loaded is None:
        loaded = "chdb" in sys.modules
    if loaded or CHDB_ALLOCATOR_ENV in environ:
        return False
    environ[CHDB_ALLOCATOR_ENV] = chdb_allocator_conf(dirty_decay_ms)
    return True


@contextmanager
def module_hidden(name: str, modules: MutableMapping[str, Any] = sys.modules) -> Iterator[None]:
    """``import name`` fails inside the block (None in sys.modules is Python's way of saying a
    module is absent) unless the module is loaded already; after it, it imports as usual."""
    if name in modules:
        yield
        return
    modules[name] = None
    try:
        yield
    finally:
        if modules.get(name, ...) is None:
            del modules[name]


def load_chdb_without_arrow() -> None:
    """Load the engine's Python side (chdb.state, which clickhouse-connect's chdb:// client
    uses) without pyarrow: chdb.state imports it when it can, for Arrow APIs TrackFlow never
    calls, and it costs the worker ~39 MB resident (pyarrow's libraries and numpy)."""
    with module_hidden("pyarrow"):
        importlib.import_module("chdb.state")


def database_filter(table: str) -> tuple[str, str]:
    """A system-table condition on ``table``'s database (the client's current one when the name
    is not qualified), and the value of its ``{database:String}`` parameter."""
    database = table.rpartition(".")[0]
    return "database = " + ("{database:String}" if database else "currentDatabase()"), database


def embedded_store_folder(url: str) -> str | None:
    """The folder of a ``chdb://`` store URL (its options after ``?`` left out), else None."""
    if not url.startswith("chdb://"):
        return None
    return url.removeprefix("chdb://").partition("?")[0]


class StoreInUse(RuntimeError):
    """The embedded store's folder is open in another process (chDB opens a store in one only)."""

    def __init__(self, folder: Path, holder: str) -> None:
        super().__init__(
            f"TrackFlow cannot open the embedded store {folder}: {holder} holds it (chDB opens "
            "a store in one process only); stop that process, give this worker another "
            "TRACKFLOW_CLICKHOUSE_URL, or run it with TRACKFLOW_SINK_ENABLED=false to ingest only"
        )
        self.folder = folder
        self.holder = holder


def store_holder(folder: Path) -> str | None:
    """Who holds an embedded store open: ClickHouse locks ``<store>/status`` (flock) while it
    runs and writes its PID there. "pid N" (or "another process"), or None when it is free."""
    status = folder / "status"
    try:
        descriptor = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = status.read_text(errors="replace")
        pid = next((line.split()[-1] for line in text.splitlines() if line.startswith("PID:")), "")
        return f"pid {pid}" if pid.isdigit() else "another process"
    except OSError:
        return None
    finally:
        os.close(descriptor)  # releases the lock this check took
    return None


class StoreActivity(NamedTuple):
    merges: int
    merge_memory_bytes: int
    active_parts: int


class EventStore:
    def __init__(
        self,
        url: str,
        table: str = "events",
        merge_nice: int = 0,
        cluster: str = "",
        retention_days: int = DEFAULT_RETENTION_DAYS,
        dirty_decay_ms: int | None = None,
        merges_at_once: int = 0,
        engine_options: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.table = table
        self.cluster = cluster
        self.retention_days = retention_days
        self.merge_nice = merge_nice
        self.merges_at_once = merges_at_once
        # chDB start-up options over TrackFlow's own (benchmarks compare engine settings)
        self.engine_options = dict(engine_options or {})
        self.dirty_decay_ms = dirty_decay_ms  # None: chDB's allocator as built
        self._client: Any = None
        # True once this process made or checked the tables (the sink does, as it starts).
        self.schema_ready = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    # -- sync side (runs on the store thread) --------------------------------------------
    def _connect(self) -> Any:
        if self._client is None:
            options: dict[str, Any] = {}
            path = embedded_store_folder(self.url)
            if path is not None:
                soft, _ = raise_open_files_limit()  # the engine's parts and merges open files
                log.info("open-files limit %d", soft)
                if path.startswith("/"):
                    Path(path).mkdir(parents=True, exist_ok=True)
                options["chdb_options"] = {
                    **chdb_engine_options(self.merge_nice, self.merges_at_once),
                    **self.engine_options,
                }
                if self.dirty_decay_ms is not None and not configure_chdb_allocator(
                    self.dirty_decay_ms
                ):
                    log.warning(
                        "chDB allocator options not set (%s=%r, chdb loaded: %s)",
                        CHDB_ALLOCATOR_ENV,
                        os.environ.get(CHDB_ALLOCATOR_ENV),
                        "chdb" in sys.modules,
                    )
                load_chdb_without_arrow()  # after the allocator's options: this loads the engine
            if self.cluster:
                options["settings"] = CLUSTER_CLIENT_SETTINGS
            try:
                self._client = clickhouse_connect.get_client(dsn=self.url, **options)
            except Exception as exc:
                self._explain_store_in_use(exc)
                raise
            log.info("clickhouse connected url=%s", describe_url(self.url))
        return self._client

    def _explain_store_in_use(self, exc: Exception) -> None:
        """chDB's own error for a store held elsewhere says only "Error initializing
        EmbeddedServer"; raise one that names the holder and what to change instead."""
        path = embedded_store_folder(self.url)
        if path is None:
            return
        holder = store_holder(Path(path))
        if holder is not None:
            raise StoreInUse(Path(path), holder) from exc

    def _ensure_schema(self) -> None:
        """Make the tables at today's layout, or bring ones made by an earlier TrackFlow to it
        with the migrations not yet recorded (schemas/migrations.py). Safe to repeat."""
        client = self._connect()
        if self.cluster:  # a new cluster gets today's layout: there is no earlier one to convert
            for statement in self.cluster_schema():
                client.command(statement)
            self._record_migrations()
            self.schema_ready = True
            return
        if not self._column_types():
            # A new store: today's layout, on which every migration then finds nothing to do
            # (the rollup's fill runs, on no rows).
            for statement in (
                events_table_ddl(self.table, self.retention_days),
                *session_hours_ddl(self.table, self.retention_days),
            ):
                client.command(statement)
        client.command(schema_steps_ddl(self.table))
        self._apply_migrations()
        self._reconcile_retention()
        self.schema_ready = True

    def _apply_migrations(self) -> None:
        """Apply the migrations not recorded, in order, each against the layout left by the
        one before, and record each."""
        settings = SchemaSettings(self.retention_days)
        layout = self._layout()
        for migration in pending_migrations(self._recorded_migrations()):
            statements = migration.statements(self.table, settings, layout)
            self._run_migration(migration, statements)
            if statements:
                layout = self._layout()

    def _record_migrations(self) -> None:
        """Record the migrations of a store made at today's layout (a cluster) as applied;
        only those that move rows (the rollup's fill from the stored events) run."""
        settings = SchemaSettings(self.retention_days)
        for migration in pending_migrations(self._recorded_migrations()):
            run = migration.moves_rows
            statements = migration.statements(self.table, settings, Layout()) if run else []
            self._run_migration(migration, statements)

    def _run_migration(self, migration: Migration, statements: list[str]) -> None:
        client = self._connect()
        for statement in statements:
            log.info(
                "clickhouse migration %d (%s): %s", migration.number, migration.name, statement
            )
            client.command(statement)
        client.command(
            f"INSERT INTO {schema_steps_table(self.table)} (step) VALUES ({{step:String}})",
            parameters={"step": migration.name},
        )

    def _reconcile_retention(self) -> None:
        """Not a migration, which happens once: the TTL follows TRACKFLOW_RETENTION_DAYS, so it
        is compared with the setting at every start and changed whenever they differ."""
        for statement in retention_ttl_ddl(self.table, self.retention_days, self._engines()):
            log.info("clickhouse retention changed: %s", statement)
            self._connect().command(statement)

    def _layout(self) -> Layout:
        return Layout(
            events=self._column_types(),
            rollup=self._column_types(session_hours_table(self.table)),
            view=self._column_types(session_hours_view(self.table)),
            engines=self._engines(),
        )

    def cluster_schema(self) -> list[str]:
        """The statements that make the schema on the cluster (ON CLUSTER, so from any node)."""
        database = self.table.rpartition(".")[0]
        if not database:
            database = str(self._connect().command("SELECT currentDatabase()"))
        return cluster_schema_ddl(self.table, self.cluster, database, self.retention_days)

    def _column_types(self, table: str | None = None) -> dict[str, str]:
        qualified = table or self.table
        in_database, database = database_filter(qualified)
        result = self._connect().query(
            "SELECT name, type FROM system.columns WHERE table = {name:String} AND " + in_database,
            parameters={"name": qualified.rpartition(".")[2], "database": database},
        )
        return {str(column): str(kind) for column, kind in result.result_rows}

    def _engines(self) -> dict[str, str]:
        """Table name -> system.tables.engine_full, for the tables of this store's database."""
        in_database, database = database_filter(self.table)
        result = self._connect().query(
            f"SELECT name, engine_full FROM system.tables WHERE {in_database}",
            parameters={"database": database},
        )
        return {str(name): str(engine) for name, engine in result.result_rows}

    def _activity(self) -> StoreActivity:
        in_database, database = database_filter(self.table)
        result = self._connect().query(
            f"SELECT (SELECT count() FROM system.merges WHERE {in_database}),"
            f" (SELECT sum(memory_usage) FROM system.merges WHERE {in_database}),"
            f" (SELECT count() FROM system.parts WHERE active AND {in_database})",
            parameters={"database": database},
        )
        merges, memory, parts = result.result_rows[0]
        return StoreActivity(int(merges), int(memory), int(parts))

    def _recorded_migrations(self) -> set[str]:
        result = self._connect().query(
            f"SELECT DISTINCT step FROM {schema_steps_table(self.table)}"
        )
        return {str(step) for (step,) in result.result_rows}

    def _insert_json(self, lines: Sequence[bytes], token: str = "") -> None:
        # The token makes a repeated insert of the same Kafka records a no-op in the store
        # (non_replicated_deduplication_window here, Replicated tables' deduplication on a server).
        settings = {"insert_deduplication_token": token} if token else None
        self._connect().raw_insert(
            self.table,
            list(EVENT_COLUMNS),
            insert_block=b"\n".join(lines),
            fmt="JSONEachRow",
            settings=settings,
        )

    def _insert_records(self, records: Sequence[bytes], token: str = "") -> None:
        # The records go in as the processed topic holds them; the insert's SELECT maps them to
        # rows (schemas.ddl.record_insert_sql). The token works as in _insert_json.
        settings = {"insert_deduplication_token": token} if token else None
        body = b"\n".join(records)
        if not self.url.startswith("chdb://"):  # a server reads them from the request's body
            sql = record_insert_sql(self.table, INPUT_SOURCE)
            self._connect().command(sql, data=body, settings=settings)
            return
        # chDB reads no rows at all from inline data after INSERT ... SELECT ... FROM input(),
        # so the embedded engine reads them from a file. Its settings go in the statement: as
        # an argument, the client would run four more statements to set and restore them.
        # Parsing a file of a few thousand records on several threads costs more CPU than on one.
        settings = {**(settings or {}), "input_format_parallel_parsing": "0"}
        descriptor, path = tempfile.mkstemp(prefix="trackflow-", suffix=".jsonl")
        try:  # removed after a failed write too (a full disk): the insert is retried
            with os.fdopen(descriptor, "wb") as file:
                file.write(body)
            self._connect().command(record_insert_sql(self.table, path, settings))
        finally:
            os.unlink(path)

    def _query(self, sql: str, parameters: dict[str, Any] | None) -> list[dict[str, Any]]:
        result = self._connect().query(sql, parameters=parameters or {})
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def _ping(self) -> bool:
        return bool(self._connect().command("SELECT 1") == 1)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- async side -----------------------------------------------------------------------
    async def _run(self, fun: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fun, *args)

    async def ensure_schema(self) -> None:
        await self._run(self._ensure_schema)

    async def insert_records(self, records: Sequence[bytes], token: str = "") -> None:
        """Insert processed-topic records (ProcessedEvent JSON), deduplicated by ``token``."""
        await self._run(self._insert_records, records, token)

    async def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await self._run(self._query, sql, parameters)

    async def activity(self) -> StoreActivity:
        """The merges running and the active parts in this store's database (on a cluster: on
        the node this client reaches)."""
        return await self._run(self._activity)

    async def ping(self) -> bool:
        return await self._run(self._ping)

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def close_within(self, timeout_s: float) -> bool:
        """Close the store from any thread if its own thread is free within ``timeout_s``
        (a stop that ran out of time). False when the store thread stayed busy."""
        try:
            self._executor.submit(self._close).result(timeout=timeout_s)
        except RuntimeError:  # the executor is shut down: the store was closed already
            return True
        except TimeoutError:
            return False
        return True

    # -- for tools that own the store outright (CLI, tests after the worker stopped) -------
    def query_sync(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return self._query(sql, parameters)
