"""What one insert into the events table costs the embedded store: a part per insert, a part per
row, and what each piece of the table adds to the part per insert.

    .venv/bin/python -m bench.insert_cost [--sizes 1,100,900,1800,3600] [--inserts 30]
        [--max-parts 200]

Opens a fresh chDB store through ``EventStore`` (the real DDL, rollup view and migrations),
stops its merges, and inserts the benchmark's rows (bench.store_memory.Rows: the workload
through the validate core, each use with a fresh event_id) as the sink does, one JSONEachRow
insert with its deduplication token, timing this process's CPU (chDB parses and writes an
insert on its own threads in this process; with merges stopped nothing else runs). In each of
``--inserts`` rounds: one insert of each size into the events table, and one one-row insert
into the table and into each of its copies without one piece (the rollup's view, the
materialized columns, the JSON ``properties`` column and the columns computed from it, the
skip indexes, the TTL); then every table is merged to one part per partition (untimed). A
least-squares line through (rows, mean CPU per insert) gives the part per insert and the part
per row; the one-row inserts show what each piece adds per insert. Last, ``--max-parts``
one-row inserts into a fresh copy with merges stopped show whether the cost grows with the
table's active parts. Prints one JSON document. Not a test and no thresholds: figures for
bench/tuning.md.
"""

from __future__ import annotations

import argparse
import itertools
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

import orjson

from bench.merge_memory import DERIVED_FROM_PROPERTIES
from bench.store_memory import Rows, open_store
from schemas.ddl import EVENT_COLUMNS, events_table_ddl


def materialized_columns(ddl: str) -> tuple[str, ...]:
    """The columns a CREATE TABLE computes on insert (MATERIALIZED), in its order."""
    return tuple(re.findall(r"^\s+([a-z_]+) .* MATERIALIZED ", ddl, re.MULTILINE))


def skip_indexes(ddl: str) -> tuple[str, ...]:
    return tuple(re.findall(r"^\s+INDEX ([a-z_]+) ", ddl, re.MULTILINE))


MATERIALIZED = materialized_columns(events_table_ddl())
SKIP_INDEXES = skip_indexes(events_table_ddl())


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        raise ValueError("the points need at least two different x")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def without_keys(line: bytes, keys: Sequence[str]) -> bytes:
    row = orjson.loads(line)
    for key in keys:
        row.pop(key, None)
    return orjson.dumps(row)


# Copies of the events table (no rollup view attached), each without one piece:
# (ALTERs, JSON keys the rows must not carry).
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "without the rollup's view": ((), ()),
    "without the materialized columns": (tuple(f"DROP COLUMN {c}" for c in MATERIALIZED), ()),
    "without properties and the columns computed from it": (
        (*(f"DROP COLUMN {c}" for c in DERIVED_FROM_PROPERTIES), "DROP COLUMN properties"),
        ("properties",),
    ),
    "without the skip indexes": (tuple(f"DROP INDEX {i}" for i in SKIP_INDEXES), ()),
    "without the TTL": (("REMOVE TTL",), ()),
}


def cpu_ms(call: Callable[[], Any]) -> float:
    began = time.process_time()
    call()
    return (time.process_time() - began) * 1000


def run(sizes: Sequence[int], inserts: int, max_parts: int) -> dict[str, Any]:
    rows = Rows(20_000)
    columns = list(EVENT_COLUMNS)
    with tempfile.TemporaryDirectory(prefix="insert-cost-") as tmp:
        store = open_store(Path(tmp) / "store", 0, 1000, {}, {})
        client = store._connect()
        serial = itertools.count()

        def insert(table: str, names: list[str], lines: list[bytes]) -> Callable[[], Any]:
            block = b"\n".join(lines)
            settings = {"insert_deduplication_token": f"t{next(serial)}"}
            return lambda: client.raw_insert(
                table, names, insert_block=block, fmt="JSONEachRow", settings=settings
            )

        tables: dict[str, tuple[str, list[str], tuple[str, ...]]] = {
            "as is": ("events", columns, ())
        }
        for number, (name, (alters, dropped_keys)) in enumerate(VARIANTS.items()):
            copy = f"events_variant_{number}"
            client.command(f"CREATE TABLE {copy} AS events")
            for alter in alters:
                client.command(f"ALTER TABLE {copy} {alter}")
            tables[name] = (copy, [c for c in columns if c not in dropped_keys], dropped_keys)
        client.command("SYSTEM STOP MERGES")
        insert("events", columns, rows.take(100))()  # the first insert sets up the engine

        # Interleaved, and every table merged to one part per partition after each round
        # (untimed), so that every insert is timed on a table of the same few parts.
        by_size: dict[int, list[float]] = {size: [] for size in sizes}
        one_row: dict[str, list[float]] = {name: [] for name in tables}
        for _ in range(inserts):
            for size in sizes:
                by_size[size].append(cpu_ms(insert("events", columns, rows.take(size))))
            for name, (table, names, dropped_keys) in tables.items():
                line = without_keys(rows.take(1)[0], dropped_keys)
                one_row[name].append(cpu_ms(insert(table, names, [line])))
            client.command("SYSTEM START MERGES")
            for table, _, _ in tables.values():
                client.command(f"OPTIMIZE TABLE {table} FINAL")
            client.command("SYSTEM STOP MERGES")
            time.sleep(1.0)  # the merged parts' cleanup runs in the background
        means = {size: fmean(values) for size, values in by_size.items()}
        fixed_ms, per_row_ms = fit_line(list(means.items()))

        # One-row inserts into one table with its merges stopped: the cost as parts pile up.
        client.command("CREATE TABLE events_parts AS events")
        client.command("SYSTEM STOP MERGES events_parts")
        by_parts: dict[int, float] = {}
        costs: list[float] = []
        for parts in range(1, max_parts + 1):
            costs.append(cpu_ms(insert("events_parts", columns, rows.take(1))))
            if parts in (10, 50, 100, 200, 400, max_parts):
                by_parts[parts] = fmean(costs[-10:])
    return {
        "inserts_per_size": inserts,
        "cpu_ms_per_insert_by_rows": {str(k): round(v, 2) for k, v in means.items()},
        "fixed_ms_per_insert": round(fixed_ms, 2),
        "us_per_row": round(per_row_ms * 1000, 2),
        "one_row_insert_cpu_ms": {k: round(fmean(v), 2) for k, v in one_row.items()},
        "one_row_insert_cpu_ms_by_active_parts": {str(k): round(v, 2) for k, v in by_parts.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.insert_cost", description=__doc__)
    p.add_argument(
        "--sizes", default="1,100,900,1800,3600", help="rows per insert, comma-separated"
    )
    p.add_argument("--inserts", type=int, default=30, help="inserts at each size")
    p.add_argument("--max-parts", type=int, default=200, help="one-row inserts, merges stopped")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(orjson.dumps(run(sizes, args.inserts, args.max_parts)).decode())


if __name__ == "__main__":
    main()
