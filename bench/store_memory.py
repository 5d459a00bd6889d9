"""The chDB store's memory and its threads' CPU per stored row, at the sink's cadence.

``python -m bench.store_memory [--seconds 30] [--rate 3600] [--burst 10] [--option K=V ...]
[--insert-setting K=V ...] [--table-setting K=V ...] [--purge]`` opens a fresh embedded store in
a temporary directory through ``EventStore`` (the real DDL, rollup view and migrations), then
inserts the benchmark's events (bench.workload run through the validate core and
agents.rows.to_json_row, each with a fresh event_id) as the sink does: ``rate * window`` rows
every ``window`` seconds for ``seconds`` seconds (the steady phase), then ``burst`` inserts of
``batch`` rows back to back (a catch-up after a backlog), each insert with its own
deduplication token. It prints one JSON document:

* ``rss_mb``: VmRSS and its anonymous / file-backed parts (RssAnon, RssFile) sampled every
  50 ms, the peak of each and VmHWM (the kernel's peak), at the end of each phase;
* ``cpu_us_per_row``: process CPU time per inserted row in each phase, split into the
  inserting thread (this script's main thread, where chDB parses and writes an insert) and the
  engine's own threads by name (MergeMutate, ...); threads that ended are "exited";
* ``chdb``: the engine's own view at the end: MemoryTracking and the caches' sizes
  (system.metrics; chDB has no system.asynchronous_metrics), jemalloc's totals
  (system.jemalloc_stats), merge counts (system.events), the active parts, and the start-up
  options as system.server_settings reads them back;
* ``failed_inserts``: inserts that raised (with the first error), which must be 0.

``--dirty-decay-ms`` is TRACKFLOW_CHDB_DIRTY_DECAY_MS (unset: chDB's allocator as built, or
as JE_MALLOC_CONF in the environment says). ``--option`` passes chDB start-up (server) options,
``--insert-setting`` query settings of each insert (a SETTINGS clause, like the dedup token),
``--table-setting`` an ALTER TABLE MODIFY SETTING of the events table after the schema is made.
``--purge`` runs SYSTEM JEMALLOC PURGE after every insert. ``--transients`` keeps every RssAnon
sample of the steady phase and looks at system.merges after each insert, then reports the
highest samples: their rise over the 5 s before, whether an insert was running, and the merges
under way. Compare variants with alternating runs (A B A B); each run is a new process, since
a process hosts one engine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from bench.procfs import status_mb
from schemas.ddl import EVENT_COLUMNS
from trackflow_app.store import EventStore

MAKE_ROWS = (
    "import sys, orjson; from agents.rows import to_json_row;"
    " from bench.store_baseline import processed_records;"
    " sys.stdout.buffer.write(b'\\n'.join(to_json_row(orjson.loads(r))"
    " for r in processed_records(int(sys.argv[1]))))"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
EVENT_ID_KEY = b'"event_id":"'
CHDB_METRICS = (
    "MemoryTracking",
    "MergesMutationsMemoryTracking",
    "MarkCacheBytes",
    "IndexMarkCacheBytes",
    "PrimaryIndexCacheBytes",
    "UncompressedCacheBytes",
    "PageCacheBytes",
    "QueryConditionCacheBytes",
)
JEMALLOC_TOTALS = re.compile(
    r"Allocated: (\d+), active: (\d+), metadata: (\d+).*?"
    r"resident: (\d+), mapped: (\d+), retained: (\d+)"
)


def key_values(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected K=V, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def thread_cpu_s() -> dict[int, tuple[str, float]]:
    """Thread id -> (name, user+system CPU seconds) for this process's live threads."""
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return out


def process_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


class Sampler(threading.Thread):
    """Peak VmRSS / RssAnon / RssFile, sampled every 50 ms; with ``keep``, every RssAnon
    sample too (monotonic time, MB)."""

    def __init__(self, keep: bool = False) -> None:
        super().__init__(daemon=True, name="sampler")
        self.peak: dict[str, float] = defaultdict(float)
        self.anon: list[tuple[float, float]] = []
        self.keep = keep
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            sample = status_mb()
            for name, value in sample.items():
                self.peak[name] = max(self.peak[name], value)
            if self.keep:
                self.anon.append((time.monotonic(), sample.get("RssAnon", 0.0)))


MERGES_NOW = (
    "SELECT count() AS n, sum(memory_usage) AS memory, max(total_size_bytes_compressed) AS size,"
    " max(rows_read) AS rows FROM system.merges"
)


def anon_transients(
    anon: list[tuple[float, float]],
    inserts: list[tuple[float, float]],
    merges: list[tuple[float, dict[str, Any]]],
    count: int = 8,
    apart_s: float = 2.0,
    before_s: float = 5.0,
) -> list[dict[str, Any]]:
    """The highest RssAnon samples (at least ``apart_s`` apart), each with its rise over the
    lowest sample of the ``before_s`` before it, whether an insert was running, and the merges
    seen by the nearest look at system.merges. Times are seconds from the first sample."""
    if not anon:
        return []
    origin = anon[0][0]
    picked: list[tuple[float, float]] = []
    for at, mb in sorted(anon, key=lambda sample: -sample[1]):
        if len(picked) == count:
            break
        if all(abs(at - other) >= apart_s for other, _ in picked):
            picked.append((at, mb))
    out = []
    for at, mb in sorted(picked):
        floor = min(value for when, value in anon if at - before_s <= when <= at)
        nearest = min(merges, key=lambda look: abs(look[0] - at), default=None)
        out.append(
            {
                "at_s": round(at - origin, 2),
                "anon_mb": round(mb),
                "rise_mb": round(mb - floor),
                "insert_running": any(start <= at <= end for start, end in inserts),
                "merges": nearest[1] if nearest is not None else {},
                "merges_seen_s_apart": round(abs(nearest[0] - at), 2) if nearest else None,
            }
        )
    return out


class CpuSplit:
    """CPU seconds per thread name between two points, the inserting thread apart."""

    def __init__(self, main_tid: int) -> None:
        self.main_tid = main_tid
        self.start_threads = thread_cpu_s()
        self.start_total = process_cpu_s()

    def per_row_us(self, rows: int) -> dict[str, float]:
        threads = thread_cpu_s()
        total = process_cpu_s() - self.start_total
        by_name: dict[str, float] = defaultdict(float)
        for tid, (name, cpu) in threads.items():
            used = cpu - self.start_threads.get(tid, (name, 0.0))[1]
            by_name["inserting thread" if tid == self.main_tid else name] += used
        live = sum(by_name.values())
        by_name["exited"] = max(total - live, 0.0)
        scale = 1e6 / max(rows, 1)
        out = {name: round(cpu * scale, 2) for name, cpu in sorted(by_name.items()) if cpu > 0}
        out["total"] = round(total * scale, 2)
        out["chdb threads"] = round((total - by_name["inserting thread"]) * scale, 2)
        return out


class Rows:
    """The benchmark's rows as JSONEachRow lines, each use with a fresh event_id.

    A child process makes them (the workload generator and the validate core would otherwise
    leave their own memory in this process's RSS, which measures the store)."""

    def __init__(self, count: int) -> None:
        made = subprocess.run(
            [sys.executable, "-c", MAKE_ROWS, str(count)], check=True, capture_output=True
        )
        self.lines = made.stdout.splitlines()
        self.offsets = [line.index(EVENT_ID_KEY) + len(EVENT_ID_KEY) for line in self.lines]
        self.next = 0

    def take(self, count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            line, at = self.lines[self.next], self.offsets[self.next]
            out.append(line[:at] + str(uuid.uuid4()).encode() + line[at + 36 :])
            self.next = (self.next + 1) % len(self.lines)
        return out


def jemalloc_totals(stats: str) -> dict[str, float]:
    """The totals line of jemalloc's malloc_stats_print (system.jemalloc_stats), in MB."""
    found = JEMALLOC_TOTALS.search(stats)
    if found is None:
        return {}
    names = ("allocated", "active", "metadata", "resident", "mapped", "retained")
    values = (round(int(value) / 1024 / 1024, 1) for value in found.groups())
    return dict(zip(names, values, strict=True))


def chdb_view(store: EventStore, options: dict[str, str]) -> dict[str, Any]:
    query = store.query_sync
    metrics = query(
        "SELECT metric, value FROM system.metrics WHERE metric IN {names:Array(String)}",
        {"names": list(CHDB_METRICS)},
    )
    [stats] = query("SELECT stats FROM system.jemalloc_stats")
    events = query(
        "SELECT event, value FROM system.events WHERE event IN ('Merge', 'MergedRows',"
        " 'MergeTotalMilliseconds', 'InsertedRows', 'MergedUncompressedBytes',"
        " 'DuplicatedInsertedBlocks', 'InsertQuery', 'MergeTreeDataWriterBlocks')"
    )
    parts = query(
        "SELECT table, count() AS parts, sum(rows) AS rows, groupUniqArray(part_type) AS types"
        " FROM system.parts WHERE active GROUP BY table ORDER BY table"
    )
    names = list(options)
    server = query(
        "SELECT name, value, changed FROM system.server_settings"
        " WHERE name IN {names:Array(String)}",
        {"names": names},
    )
    session = query(
        "SELECT name, value, changed FROM system.settings WHERE name IN {names:Array(String)}",
        {"names": names},
    )
    mb = 1024 * 1024
    return {
        "metrics_mb": {row["metric"]: round(int(row["value"]) / mb, 1) for row in metrics},
        "jemalloc_mb": jemalloc_totals(str(stats["stats"])),
        "events": {row["event"]: int(row["value"]) for row in events},
        "parts": parts,
        "server_settings": {row["name"]: row["value"] for row in server},
        "session_settings": {row["name"]: row["value"] for row in session},
    }


def insert(
    store: EventStore,
    lines: list[bytes],
    token: str,
    insert_settings: dict[str, str],
    purge: bool,
    failures: list[str],
) -> None:
    client = store._connect()
    settings: dict[str, Any] = {"insert_deduplication_token": token, **insert_settings}
    try:
        client.raw_insert(
            store.table,
            list(EVENT_COLUMNS),
            insert_block=b"\n".join(lines),
            fmt="JSONEachRow",
            settings=settings,
        )
    except Exception as error:  # reported, not raised: a failed insert is a finding
        failures.append(str(error)[:300])
    if purge:
        client.command("SYSTEM JEMALLOC PURGE")


def open_store(
    path: Path,
    merge_nice: int,
    dirty_decay_ms: int | None,
    options: dict[str, str],
    table_settings: dict[str, str],
) -> EventStore:
    """A fresh store at ``path`` with the real schema, chDB started with the store's own options
    plus ``options``, and ``table_settings`` set on the events table."""
    store = EventStore(
        f"chdb://{path}",
        "events",
        merge_nice=merge_nice,
        dirty_decay_ms=dirty_decay_ms,
        engine_options=options,
    )
    store._ensure_schema()
    for key, value in table_settings.items():
        store._connect().command(f"ALTER TABLE events MODIFY SETTING {key} = {value}")
    return store


def run(args: argparse.Namespace) -> dict[str, Any]:
    options = key_values(args.option)
    insert_settings = key_values(args.insert_setting)
    table_settings = key_values(args.table_setting)
    per_tick = round(args.rate * args.window)
    rows = Rows(args.pool)
    sampler = Sampler(keep=args.transients)
    sampler.start()
    result: dict[str, Any] = {
        "options": options,
        "insert_settings": insert_settings,
        "table_settings": table_settings,
        "purge": args.purge,
        "dirty_decay_ms": args.dirty_decay_ms,
        "rss_mb": {"start": status_mb()},
    }
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="store-memory-") as tmp:
        store = open_store(
            Path(tmp) / "store", args.merge_nice, args.dirty_decay_ms, options, table_settings
        )
        result["rss_mb"]["opened"] = status_mb()

        main_tid = threading.get_native_id()
        split = CpuSplit(main_tid)
        ticks = round(args.seconds / args.window)
        late = 0
        start = time.monotonic()
        inserts: list[tuple[float, float]] = []
        merges: list[tuple[float, dict[str, Any]]] = []
        for tick in range(ticks):
            began = time.monotonic()
            insert(store, rows.take(per_tick), f"s{tick}", insert_settings, args.purge, failures)
            inserts.append((began, time.monotonic()))
            if args.transients:
                look = store.query_sync(MERGES_NOW)[0]
                merges.append(
                    (
                        time.monotonic(),
                        {
                            "running": int(look["n"]),
                            "memory_mb": round(int(look["memory"] or 0) / 2**20),
                            "largest_mb": round(int(look["size"] or 0) / 2**20),
                            "rows_read": int(look["rows"] or 0),
                        },
                    )
                )
            wait = start + (tick + 1) * args.window - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                late += 1
        result["steady"] = {
            "rows": ticks * per_tick,
            "inserts": ticks,
            "late_ticks": late,
            "cpu_us_per_row": split.per_row_us(ticks * per_tick),
            "rss_mb": {"now": status_mb(), "peak": dict(sampler.peak)},
        }
        if args.transients:
            result["steady"]["anon_transients"] = anon_transients(sampler.anon, inserts, merges)

        split = CpuSplit(main_tid)
        t0 = time.monotonic()
        for i in range(args.burst):
            insert(store, rows.take(args.batch), f"b{i}", insert_settings, args.purge, failures)
        burst_s = time.monotonic() - t0
        time.sleep(args.settle)  # merges the burst started
        result["burst"] = {
            "rows": args.burst * args.batch,
            "inserts": args.burst,
            "rows_per_s": round(args.burst * args.batch / max(burst_s, 1e-9)),
            "cpu_us_per_row": split.per_row_us(args.burst * args.batch),
            "rss_mb": {"now": status_mb(), "peak": dict(sampler.peak)},
        }
        result["chdb"] = chdb_view(store, options)
        result["stored"] = store.query_sync("SELECT count() AS n FROM events")[0]["n"]
        store._close()
    sampler.stop.set()
    result["failed_inserts"] = len(failures)
    result["first_failure"] = failures[0] if failures else None
    result["rss_mb"]["end"] = status_mb()
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.store_memory", description=__doc__)
    p.add_argument("--seconds", type=float, default=30.0, help="steady phase length")
    p.add_argument("--rate", type=float, default=3600.0, help="rows per second, steady phase")
    p.add_argument("--window", type=float, default=0.5, help="seconds between steady inserts")
    p.add_argument("--burst", type=int, default=10, help="back-to-back inserts after it")
    p.add_argument("--batch", type=int, default=5000, help="rows per burst insert")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after the burst")
    p.add_argument("--pool", type=int, default=20_000, help="distinct events to draw rows from")
    p.add_argument("--merge-nice", type=int, default=10, help="TRACKFLOW_CHDB_MERGE_NICE")
    p.add_argument(
        "--transients",
        action="store_true",
        help="report the steady phase's highest RssAnon samples against inserts and merges",
    )
    p.add_argument("--dirty-decay-ms", type=int, default=None, help="TRACKFLOW_CHDB_DIRTY_DECAY_MS")
    p.add_argument("--option", action="append", default=[], help="chDB start-up option K=V")
    p.add_argument("--insert-setting", action="append", default=[], help="insert setting K=V")
    p.add_argument("--table-setting", action="append", default=[], help="events table K=V")
    p.add_argument("--purge", action="store_true", help="SYSTEM JEMALLOC PURGE after inserts")
    print(orjson.dumps(run(p.parse_args())).decode())


if __name__ == "__main__":
    main()
