"""B-store: direct clickhouse-connect bulk inserts into a fresh embedded chDB store.

``python -m bench.store_baseline --path DIR --events N --batch-size 5000`` prints one JSON
document. The rows are the benchmark's events run through the real validate stage
(agents.validate.process_batch), mapped with agents.rows.to_json_row and inserted into the table
made by schemas.ddl (with its session-hour rollup, which the materialized view fills on every
insert) at the sink's batch size: the ceiling for the sink's store side. Reported both
as insert-only rows/s (the B-store figure) and including the sink's per-record CPU
(orjson.loads of the processed record + to_json_row).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson

from agents.rows import to_json_row
from agents.validate import ValidationPolicy, process_batch
from bench.workload import raw_batches, tenant_keys
from schemas.ddl import EVENT_COLUMNS, events_table_ddl, session_hours_ddl


def processed_records(count: int) -> list[bytes]:
    tenants = tenant_keys(40)
    policy = ValidationPolicy(tenant_keys=frozenset(tenants))
    out: list[bytes] = []
    for raw in raw_batches(tenants, count, int(time.time() * 1000)):
        out.extend(orjson.dumps(e) for e in process_batch(raw, policy).processed)  # type: ignore[arg-type]
    return out[:count]


def run(path: Path, count: int, batch_size: int, rollup: bool = True) -> dict[str, Any]:
    records = processed_records(count)
    path.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    client.command(events_table_ddl("events"))
    if rollup:  # the worker's store fills its session-hour rollup on every insert too
        for statement in session_hours_ddl("events"):
            client.command(statement)
    columns = list(EVENT_COLUMNS)

    # The sink's own path: each processed record becomes a JSONEachRow line that ClickHouse parses.
    t0 = time.perf_counter()
    rows = [to_json_row(orjson.loads(r)) for r in records]
    map_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    cpu0 = time.process_time()  # this process's threads, chDB's included
    inserts = 0
    for start in range(0, len(rows), batch_size):
        block = b"\n".join(rows[start : start + batch_size])
        client.raw_insert("events", columns, insert_block=block, fmt="JSONEachRow")
        inserts += 1
    insert_s = time.perf_counter() - t0
    insert_cpu_s = time.process_time() - cpu0
    stored = client.command("SELECT count() FROM events")
    client.close()
    return {
        "events": len(rows),
        "stored": int(stored),
        "batch_size": batch_size,
        "inserts": inserts,
        "insert_s": insert_s,
        "map_s": map_s,
        "rollup": rollup,
        "events_per_s": len(rows) / insert_s,
        "insert_cpu_us_per_event": insert_cpu_s / len(rows) * 1e6,
        "events_per_s_with_mapping": len(rows) / (insert_s + map_s),
        "record_bytes": sum(len(r) for r in records) / max(len(records), 1),
        # This process holds chDB and the rows, like the worker's sink does: a floor for its RSS.
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
