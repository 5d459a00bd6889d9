"""B-store: the sink's bulk inserts into a fresh embedded chDB store, from one process.

``python -m bench.store_baseline --path DIR --events N --batch-size 5000`` prints one JSON
document. The records are the benchmark's events run through the real validate stage
(agents.validate.process_batch) as the processed topic holds them, inserted as the sink inserts
them (trackflow_app.store.EventStore._insert_records: the insert's SELECT maps each record to a
row) into the table made by schemas.ddl, with its session-hour rollup, which the materialized
view fills on every insert, at the sink's batch size: the ceiling for the sink's store side.
``--no-rollup`` drops the rollup.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Any

import orjson

from agents.validate import ValidationPolicy, process_batch
from bench.workload import raw_batches, tenant_keys
from schemas.ddl import session_hours_view
from trackflow_app.store import EventStore


def processed_records(count: int) -> list[bytes]:
    tenants = tenant_keys(40)
    policy = ValidationPolicy(tenant_keys=frozenset(tenants))
    out: list[bytes] = []
    for raw in raw_batches(tenants, count, int(time.time() * 1000)):
        out.extend(orjson.dumps(e) for e in process_batch(raw, policy).processed)  # type: ignore[arg-type]
    return out[:count]


def run(path: Path, count: int, batch_size: int, rollup: bool = True) -> dict[str, Any]:
    records = processed_records(count)
    store = EventStore(f"chdb://{path}", "events")
    store._ensure_schema()
    client = store._connect()
    if not rollup:
        client.command(f"DROP VIEW {session_hours_view('events')}")

    t0 = time.perf_counter()
    cpu0 = time.process_time()  # this process's threads, chDB's included
    inserts = 0
    for start in range(0, len(records), batch_size):
        store._insert_records(records[start : start + batch_size])
        inserts += 1
    insert_s = time.perf_counter() - t0
    insert_cpu_s = time.process_time() - cpu0
    stored = client.command("SELECT count() FROM events")
    store._close()
    return {
        "events": len(records),
        "stored": int(stored),
        "batch_size": batch_size,
        "inserts": inserts,
        "insert_s": insert_s,
        "rollup": rollup,
        "events_per_s": len(records) / insert_s,
        "insert_cpu_us_per_event": insert_cpu_s / len(records) * 1e6,
        "record_bytes": sum(len(r) for r in records) / max(len(records), 1),
        # This process holds chDB and the records, like the worker's sink does: a floor for its
        # RSS.
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.store_baseline")
    p.add_argument("--path", required=True)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--no-rollup", action="store_true", help="the events table alone")
    args = p.parse_args()
    result = run(Path(args.path), args.events, args.batch_size, rollup=not args.no_rollup)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
