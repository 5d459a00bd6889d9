"""What leaving bots out costs the read queries: every dashboard query of the largest tenant over
30 days, timed with the bot filter (the default) and without it (include_bots=1, the SQL as it was
before the flag), interleaved so that other load on the host hits both alike.

    .venv/bin/python -m bench.bot_filter_cost [--events 2000000] [--runs 20] [--store PATH]

Fills a fresh chDB store with bench/query_bench.py's generator (no bots in it: the filter keeps
every row, so the figures are its cost alone). Not a test: prints medians per query.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from bench import query_bench as qb
from trackflow_app.store import EventStore
from web.read.sql import Query


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bot_filter_cost")
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--store", type=Path, default=qb.ROOT / "var" / "bench" / "bot-filter")
    args = parser.parse_args()
    shutil.rmtree(args.store, ignore_errors=True)
    store = EventStore(f"chdb://{args.store}", qb.TABLE)
    now = int(time.time() * 1000)
    qb.fill(store, args.events, 40, 30, now)
    qb.wait_for_merges(store)
    largest = qb.store_facts(store)["tenants"][0]
    print(f"largest tenant {largest['tenant_id']}: {int(largest['events']):,} events", flush=True)
    pairs = [("from", str(now - 30 * qb.DAY_MS)), ("to", str(now))]
    cases = [case for case in qb.CASES if case.endpoint != "health"]  # health has no filter
    queries: dict[tuple[str, str], list[Query]] = {
        (case.name, flag): qb.case_queries(
            store, case, largest["tenant_id"], [*pairs, ("include_bots", flag)], now
        )
        for case in cases
        for flag in ("0", "1")
    }
    timings: dict[tuple[str, str], list[float]] = {key: [] for key in queries}
    for attempt in range(args.runs + 1):
        for key, statements in queries.items():
            started = time.perf_counter()
            for sql, parameters in statements:
                store.query_sync(sql, parameters)
            if attempt:  # the first round warms caches
                timings[key].append((time.perf_counter() - started) * 1000)
    totals = {"0": 0.0, "1": 0.0}
    for case in cases:
        left_out = statistics.median(timings[(case.name, "0")])
        included = statistics.median(timings[(case.name, "1")])
        totals["0"] += left_out
        totals["1"] += included
        print(
            f"{case.name:28s} bots left out {left_out:7.1f} ms  include_bots=1 {included:7.1f} ms"
            f"  {100 * (left_out / included - 1):+4.0f} %"
        )
    change = 100 * (totals["0"] / totals["1"] - 1)
    print(
        f"{'sum of medians':28s} bots left out {totals['0']:7.1f} ms  "
        f"include_bots=1 {totals['1']:7.1f} ms  {change:+4.0f} %"
    )


if __name__ == "__main__":
    main()
