"""Peak memory of one large merge of the events table in the embedded store.

``python -m bench.merge_memory [--parts 15] [--rows 100000] [--without-properties]
[--table-setting K=V ...] [--create-setting K=V ...] [--option K=V ...]`` opens a fresh chDB
store through ``EventStore`` (the real DDL), stops the events table's merges, inserts ``parts``
parts of ``rows`` benchmark rows each (bench.store_memory.Rows: the workload through the
validate core, each use with a fresh event_id), then merges them all with OPTIMIZE FINAL while
sampling the process's anonymous memory (RssAnon) every 10 ms. It prints one JSON document: the
anonymous memory before the merge, its peak during the merge, the rise, the merge's duration and
CPU time, the inserts' CPU time (the process's, rows made by the validate core included), and the
active parts after the merge with their size on disk.

Variants: ``--without-properties`` drops the JSON ``properties`` column (and the columns computed
from it) before inserting; ``--table-setting`` is an ALTER TABLE MODIFY SETTING of the table;
``--create-setting`` makes a copy of the table created with these settings (for settings that
are read-only once a table exists, such as index_granularity_bytes) and inserts into the copy;
``--option`` passes chDB start-up (server) options. One engine per process: compare variants in
alternating runs.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench.procfs import status_mb
from bench.store_memory import Rows, key_values, open_store
from schemas.ddl import EVENT_COLUMNS

DERIVED_FROM_PROPERTIES = ("load_time", "dom_content_loaded", "error_fingerprint")


def table_copy_ddl(create_query: str, table: str, copy: str, settings: dict[str, str]) -> str:
    """``create_query`` (system.tables.create_table_query of ``table``) for a table ``copy``
    with ``settings`` added in front of its own."""
    head, sep, rest = create_query.partition(f".{table} ")
    if not sep:
        raise ValueError(f"no table {table!r} in {create_query[:80]!r}")
    ddl = f"{head}.{copy} {rest}"
    added = ", ".join(f"{key} = {value}" for key, value in settings.items())
    if " SETTINGS " in ddl:
        return ddl.replace(" SETTINGS ", f" SETTINGS {added}, ", 1)
    return f"{ddl} SETTINGS {added}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = Rows(20_000)
    options, table_settings = key_values(args.option), key_values(args.table_setting)
    create_settings = key_values(args.create_setting)
    with tempfile.TemporaryDirectory(prefix="merge-memory-") as tmp:
        # TRACKFLOW_CHDB_DIRTY_DECAY_MS's default, ClickHouse's merge priority
        store = open_store(Path(tmp) / "store", 0, 1000, options, table_settings)
        client = store._connect()
        table, columns = "events", list(EVENT_COLUMNS)
        if args.without_properties:
            drops = ", ".join(f"DROP COLUMN {column}" for column in DERIVED_FROM_PROPERTIES)
            client.command(f"ALTER TABLE events {drops}")
            client.command("ALTER TABLE events DROP COLUMN properties")
            columns.remove("properties")
        if create_settings:
            [[create_query]] = client.query(
                "SELECT create_table_query FROM system.tables"
                " WHERE name = 'events' AND database = currentDatabase()"
            ).result_rows
            client.command(table_copy_ddl(create_query, "events", "events_copy", create_settings))
            table = "events_copy"
        client.command(f"SYSTEM STOP MERGES {table}")
        insert_began = time.process_time()
        for part in range(args.parts):
            client.raw_insert(
                table,
                columns,
                insert_block=b"\n".join(rows.take(args.rows)),
                fmt="JSONEachRow",
                settings={"insert_deduplication_token": f"p{part}"},
            )
        insert_cpu = time.process_time() - insert_began
        client.command("SYSTEM JEMALLOC PURGE")
        time.sleep(1.0)
        before = status_mb()["RssAnon"]
        peak = before
        merged = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not merged.is_set():
                peak = max(peak, status_mb()["RssAnon"])
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        began, merge_began = time.monotonic(), time.process_time()
        client.command(f"SYSTEM START MERGES {table}")
        client.command(f"OPTIMIZE TABLE {table} FINAL")
        took, merge_cpu = time.monotonic() - began, time.process_time() - merge_began
        merged.set()
        sampler.join()
        [[parts_after, bytes_on_disk]] = client.query(
            "SELECT count(), sum(bytes_on_disk) FROM system.parts"
            " WHERE active AND database = currentDatabase()"
            " AND table = {table:String}",
            parameters={"table": table},
        ).result_rows
    return {
        "parts": args.parts,
        "rows_per_part": args.rows,
        "without_properties": args.without_properties,
        "table_settings": table_settings,
        "create_settings": create_settings,
        "options": options,
        "anon_before_mb": round(before),
        "anon_peak_mb": round(peak),
        "rise_mb": round(peak - before),
        "merge_s": round(took, 2),
        "merge_cpu_s": round(merge_cpu, 2),
        "insert_cpu_s": round(insert_cpu, 2),
        "parts_after": parts_after,
        "mb_on_disk": round(bytes_on_disk / 1e6, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.merge_memory", description=__doc__)
    p.add_argument("--parts", type=int, default=15)
    p.add_argument("--rows", type=int, default=100_000, help="rows per part")
    p.add_argument("--without-properties", action="store_true")
    p.add_argument("--table-setting", action="append", default=[], metavar="K=V")
    p.add_argument("--create-setting", action="append", default=[], metavar="K=V")
    p.add_argument("--option", action="append", default=[], metavar="K=V")
    print(orjson.dumps(run(p.parse_args())).decode())


if __name__ == "__main__":
    main()
