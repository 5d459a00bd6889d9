"""Dashboard query latency while the sink writes: the read API's queries against a chDB store
that takes an insert every window, as the worker's store does.

    .venv/bin/python -m bench.read_during_ingest [--seconds 60] [--rate 3600] [--window 0.5]
        [--history 1000000] [--table-setting K=V ...] [--settings-first]

Opens a fresh embedded store in a temporary directory through ``EventStore`` (the real DDL and
migrations), fills it with ``--history`` events of the last 30 days (bench.query_bench's
generator, settled merges), then applies the ``--table-setting`` overrides (before the history
with ``--settings-first``, for settings that shape how parts are written) and runs the
worker's pattern on one thread, as the worker's single store thread does: every ``--window``
seconds one insert of ``rate * window`` rows (the benchmark's events, bench.store_memory's
rows, each with a fresh event_id and a deduplication token), and in between the dashboard's
queries (bench.query_bench's cases over the last 24 hours of the busiest ingested tenant) one
after another. It prints one JSON document: each query's p50/p95/max in ms, all queries
together, the insert times, the events table's active part count (sampled before every
query), and the merges chDB ran.

Compare table settings with alternating runs (A B A B); each run is a new process, since a
process hosts one engine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.query_bench import CASES, DAY_MS, TABLE, case_queries, fill, p95, wait_for_merges
from bench.store_memory import Rows, key_values
from trackflow_app.store import EventStore


def active_parts(store: EventStore) -> int:
    found = store.query_sync(
        "SELECT count() AS n FROM system.parts WHERE table = {t:String} AND active",
        {"t": TABLE},
    )
    return int(found[0]["n"])


def merges_done(store: EventStore) -> int:
    found = store.query_sync("SELECT value FROM system.events WHERE event = 'Merge'")
    return int(found[0]["value"]) if found else 0


def busiest_ingested_tenant(rows: list[bytes]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        tenant = orjson.loads(row)["tenant_id"]
        counts[tenant] = counts.get(tenant, 0) + 1
    return max(counts, key=lambda tenant: counts[tenant])


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p95": round(p95(values), 1),
        "max": round(max(values), 1),
    }


def set_table_settings(store: EventStore, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        store._connect().command(f"ALTER TABLE {TABLE} MODIFY SETTING {name} = {value}")


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    store = EventStore(f"chdb://{directory}", TABLE, dirty_decay_ms=1000)
    now = int(time.time() * 1000)
    store._ensure_schema()
    if args.settings_first:
        set_table_settings(store, key_values(args.table_setting))
    if args.history:
        fill(store, args.history, 40, 30, now)
        wait_for_merges(store)
    if not args.settings_first:
        set_table_settings(store, key_values(args.table_setting))

    per_insert = max(int(args.rate * args.window), 1)
    rows = Rows(min(per_insert * 20, 200_000))
    tenant = busiest_ingested_tenant(rows.lines)
    merges_before = merges_done(store)
    timings: dict[str, list[float]] = {case.name: [] for case in CASES}
    insert_ms: list[float] = []
    parts: list[int] = []
    queries: dict[str, Any] = {}
    started = time.monotonic()
    next_insert = started
    inserts = 0
    while time.monotonic() - started < args.seconds:
        if time.monotonic() >= next_insert:
            began = time.perf_counter()
            store._insert_json(rows.take(per_insert), f"read-during-ingest-{inserts}")
            insert_ms.append((time.perf_counter() - began) * 1000)
            inserts += 1
            next_insert += args.window
            if inserts == 1:  # the tenant's rows exist now: build each case's statements once
                clock = int(time.time() * 1000)
                pairs = [("from", str(clock - DAY_MS)), ("to", str(clock + DAY_MS))]
                queries = {
                    case.name: case_queries(store, case, tenant, pairs, clock) for case in CASES
                }
            continue
        for name, statements in queries.items():
            if time.monotonic() >= next_insert:
                break
            parts.append(active_parts(store))
            began = time.perf_counter()
            for sql, params in statements:
                store.query_sync(sql, params)
            timings[name].append((time.perf_counter() - began) * 1000)
    every = [value for values in timings.values() for value in values]
    result = {
        "seconds": args.seconds,
        "rate": args.rate,
        "window_s": args.window,
        "history_events": args.history,
        "table_settings": key_values(args.table_setting),
        "settings_first": args.settings_first,
        "tenant": tenant,
        "inserts": inserts,
        "rows_inserted": inserts * per_insert,
        "insert_ms": summary(insert_ms),
        "all_queries_ms": summary(every),
        "queries_ms": {name: summary(values) for name, values in timings.items()},
        "active_parts": {
            "mean": round(statistics.fmean(parts), 1) if parts else 0,
            "max": max(parts, default=0),
        },
        "merges": merges_done(store) - merges_before,
    }
    store._close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_during_ingest")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=3600, help="events/s inserted")
    parser.add_argument("--window", type=float, default=0.5, help="seconds between inserts")
    parser.add_argument("--history", type=int, default=1_000_000, help="events stored first")
    parser.add_argument("--table-setting", action="append", default=[], metavar="K=V")
    parser.add_argument(
        "--settings-first", action="store_true", help="set the table settings before the history"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trackflow-read-ingest-") as directory:
        result = run(args, Path(directory) / "store")
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
