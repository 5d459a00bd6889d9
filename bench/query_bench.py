"""Read-side benchmark: 10 million realistic events in an embedded chDB store, every dashboard
query timed through the same SQL builders (web/read/sql.py) and the same EventStore the worker
uses.

    .venv/bin/python bench/query_bench.py                  # fill var/bench/store, time, write md
    .venv/bin/python bench/query_bench.py --reuse          # keep an existing store of the same size

The data is generated inside ClickHouse (INSERT ... SELECT over numbers(), deterministic hashes)
into the table made by schemas.ddl, in chunks: 40 tenants with a skewed share of traffic (the
largest holds ~22%), ~645k sessions of 1..200 events (mean ~15.5) over 30 days, 300 pages per
site with a Zipf-like popularity, referrers, device/OS/browser/country mixes, 5% errors of 40
kinds, 15% performance events with log-normal load times. 1% of the sessions are then delivered
a second time (same event ids, a later insert), as a Kafka redelivery would.
Not a test: it prints and writes bench/query_results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trackflow_app.store import EventStore  # noqa: E402
from web.read.params import parse_request  # noqa: E402
from web.read.request import StatsRequest  # noqa: E402
from web.read.sql import (  # noqa: E402
    Query,
    breakdown_query,
    error_detail_query,
    errors_query,
    health_query,
    pages_query,
    performance_query,
    referrers_query,
    sessions_query,
    traffic_query,
)

TABLE = "events"
DAY_MS = 86_400_000
MEAN_SESSION_EVENTS = 15.52  # of the length distribution below, measured
SESSIONS_PER_INSERT = 50_000

FILL_SQL = """
INSERT INTO {table} (event_id, event_type, timestamp, tenant_id, session_id, user_id, page_url,
  referrer, device_type, os, browser, ip_address, country, region, city, properties, received_at,
  client_timestamp, seq, user_agent, inserted_at)
WITH
  18446744073709551616. AS u64,
  ['desktop', 'mobile'] AS devices,
  ['Windows', 'Mac', 'Linux'] AS desktop_os,
  ['Android', 'iOS'] AS mobile_os,
  ['Chrome', 'Safari', 'Firefox', 'Edge'] AS browsers,
  ['US', 'DE', 'GB', 'FR', 'IN', 'BR', 'JP', 'CA', 'NL', 'ES', 'IT', 'PL', 'SE', 'AU', 'MX']
    AS countries,
  ['https://www.google.com/', 'https://news.ycombinator.com/', 'https://t.co/',
   'https://www.bing.com/', 'https://duckduckgo.com/', 'https://www.reddit.com/',
   'https://github.com/', 'https://www.facebook.com/'] AS refs,
  ['Cannot read properties of undefined (reading \\'x\\')', 'x is not a function',
   'Network request failed', 'Unexpected token < in JSON at position 0',
   'ResizeObserver loop limit exceeded', 'Script error.', 'Maximum call stack size exceeded',
   'Failed to fetch'] AS messages,
  cityHash64(s, i, 'type') / u64 AS ut,
  least(start_ms + i * 25000 + cityHash64(s, i, 'gap') % 20000, {{end_ms:Int64}} - 1) AS ts,
  toUInt32(floor(pow(cityHash64(s, intDiv(i, 3), 'page') / u64, 3) * 300)) AS page,
  toUInt64(200 + floor(exp(6.5 + 0.6 * sqrt(-2 * log(1 - cityHash64(s, i, 'l1') / u64))
    * cos(6.283185307 * cityHash64(s, i, 'l2') / u64)))) AS load,
  toUInt32(floor(pow(cityHash64(s, i, 'err') / u64, 2) * 40)) AS err
SELECT
  reinterpretAsUUID(reinterpretAsFixedString(cityHash64(s, i, 'event-a'))
    || reinterpretAsFixedString(cityHash64(s, i, 'event-b'))) AS event_id,
  CAST(multiIf(i = 0 OR ut < 0.36, 'page_view', ut < 0.80, 'click', ut < 0.95, 'performance',
    'error') AS Enum8('page_view' = 1, 'click' = 2, 'error' = 3, 'performance' = 4)) AS event_type,
  fromUnixTimestamp64Milli(ts, 'UTC') AS timestamp,
  concat('tenant-', leftPad(toString(tenant), 2, '0')) AS tenant_id,
  concat('s-', hex(cityHash64(s, 'session'))) AS session_id,
  if(cityHash64(s, 'user') % 10 < 3,
     concat('u-', toString(tenant), '-', toString(cityHash64(s, 'uid') % 20000)), NULL) AS user_id,
  concat('https://site', toString(tenant), '.example/',
         if(page = 0, '', concat('p/', toString(page)))) AS page_url,
  if(cityHash64(s, 'ref') % 10 < 4, NULL,
     refs[1 + cityHash64(s, 'refi') % length(refs)]) AS referrer,
  devices[1 + mobile] AS device_type,
  if(mobile = 1, mobile_os[1 + cityHash64(s, 'os') % 2],
     desktop_os[1 + cityHash64(s, 'os') % 3]) AS os,
  browsers[1 + toUInt32(floor(pow(cityHash64(s, 'br') / u64, 2) * 4))] AS browser,
  concat('10.', toString(cityHash64(s, 'ip') % 256), '.', toString(cityHash64(s, 'ip2') % 256),
         '.1') AS ip_address,
  if(cityHash64(s, 'c') % 10 = 0, NULL,
     countries[1 + toUInt32(floor(pow(cityHash64(s, 'ci') / u64, 2) * 15))]) AS country,
  NULL AS region,
  NULL AS city,
  multiIf(
    event_type = 'page_view', concat('{{"title":"Page ', toString(page), '"}}'),
    event_type = 'click',
      concat('{{"tag":"BUTTON","id":"btn-', toString(cityHash64(s, i, 'btn') % 20), '"}}'),
    event_type = 'performance',
      concat('{{"loadTime":', toString(load), ',"domContentLoaded":',
             toString(intDiv(load * (30 + cityHash64(s, i, 'dcl') % 50), 100)), '}}'),
    concat('{{"name":null,"message":', toJSONString(messages[1 + err % 8]),
           ',"source":"https://site', toString(tenant), '.example/static/app.', toString(err % 5),
           '.js","line":', toString(10 + err * 7), ',"col":', toString(3 + err % 40),
           ',"stack":', toJSONString(concat('Error: ', messages[1 + err % 8], '\\n    at fn',
           toString(err), ' (app.js:', toString(10 + err * 7), ':5)\\n    at main (app.js:1:1)')),
           '}}')
  ) AS properties,
  fromUnixTimestamp64Milli(ts + 40, 'UTC') AS received_at,
  fromUnixTimestamp64Milli(ts, 'UTC') AS client_timestamp,
  toUInt32(i + 1) AS seq,
  'Mozilla/5.0 (bench)' AS user_agent,
  fromUnixTimestamp64Milli(ts + 900 + cityHash64(s, i, 'lag') % 2000
                           + {{redelivery_delay_ms:Int64}}, 'UTC') AS inserted_at
FROM (
  SELECT
    number AS s,
    toUInt32(floor(pow(cityHash64(number, 'tenant') / 18446744073709551616., 2.5)
                   * {{tenants:UInt32}})) AS tenant,
    toInt64({{end_ms:Int64}} - {{span_ms:Int64}} + cityHash64(number, 'start') % {{span_ms:Int64}})
      AS start_ms,
    least(1 + toUInt32(floor(-log(1 - cityHash64(number, 'len') / 18446744073709551616.) * 15)),
          200) AS len,
    toUInt8(cityHash64(number, 'mobile') % 10 < 4) AS mobile
  FROM numbers({{first:UInt64}}, {{count:UInt64}})
  WHERE cityHash64(number, 'redeliver') % 100 < {{share_percent:UInt8}}
)
ARRAY JOIN range(len) AS i
"""


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str
    build: Callable[[str, StatsRequest], list[Query]]
    extra: tuple[tuple[str, str], ...] = ()


def one(builder: Callable[[str, StatsRequest], Query]) -> Any:
    return lambda table, request: [builder(table, request)]


CASES: list[Case] = [
    Case("traffic", "traffic", one(traffic_query)),
    Case("sessions", "sessions", one(sessions_query)),
    Case("pages", "pages", one(pages_query)),
    Case("referrers", "referrers", one(referrers_query)),
    Case("breakdown device_type", "breakdown", one(breakdown_query), (("by", "device_type"),)),
    Case("breakdown os", "breakdown", one(breakdown_query), (("by", "os"),)),
    Case("breakdown browser", "breakdown", one(breakdown_query), (("by", "browser"),)),
    Case("breakdown country", "breakdown", one(breakdown_query), (("by", "country"),)),
    Case("errors", "errors", one(errors_query), (("limit", "20"),)),
    Case("error detail (drill-down)", "error_detail", one(error_detail_query)),
    Case("performance", "performance", one(performance_query)),
    Case("health (60 min)", "health", one(health_query), (("minutes", "60"),)),
]
DASHBOARD = [c.name for c in CASES if c.endpoint != "error_detail"]


def fill(store: EventStore, events: int, tenants: int, days: int, end_ms: int) -> dict[str, Any]:
    client = store._connect()
    store._ensure_schema()
    sessions = round(events / MEAN_SESSION_EVENTS)
    started = time.monotonic()
    base = {"tenants": tenants, "end_ms": end_ms, "span_ms": days * DAY_MS}
    sql = FILL_SQL.format(table=TABLE)
    for first in range(0, sessions, SESSIONS_PER_INSERT):
        count = min(SESSIONS_PER_INSERT, sessions - first)
        params = {**base, "first": first, "count": count, "share_percent": 100}
        client.command(sql, parameters={**params, "redelivery_delay_ms": 0})
        print(f"  inserted sessions {first + count:,}/{sessions:,}", flush=True)
    # Redelivery: 1% of the sessions again, same event ids, written later (a separate insert).
    params = {**base, "first": 0, "count": sessions, "share_percent": 1}
    client.command(sql, parameters={**params, "redelivery_delay_ms": 5000})
    return {"sessions": sessions, "fill_s": time.monotonic() - started}


def wait_for_merges(store: EventStore, limit_s: float = 600) -> None:
    """Time a settled table: let the background merges the fill started finish first."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        running = store.query_sync("SELECT count() AS n FROM system.merges")[0]["n"]
        if not running:
            break
        time.sleep(2)
    print(f"background merges settled after {time.monotonic() - started:.0f} s", flush=True)


def store_facts(store: EventStore) -> dict[str, Any]:
    rows = store.query_sync(f"SELECT count() AS n, uniqExact(event_id) AS u FROM {TABLE}")[0]
    parts = store.query_sync(
        "SELECT count() AS parts, sum(bytes_on_disk) AS bytes FROM system.parts "
        "WHERE table = {t:String} AND active",
        {"t": TABLE},
    )[0]
    tenants = store.query_sync(
        f"SELECT tenant_id, uniqExact(event_id) AS events FROM {TABLE} "
        "GROUP BY tenant_id ORDER BY events DESC"
    )
    rollup = store.query_sync(f"SELECT count() AS n FROM {TABLE}_session_hours")[0]
    return {
        "rollup_rows": int(rollup["n"]),
        "rows": int(rows["n"]),
        "events": int(rows["u"]),
        "parts": int(parts["parts"]),
        "bytes": int(parts["bytes"]),
        "tenants": tenants,
    }


def case_queries(
    store: EventStore, case: Case, tenant: str, pairs: list[tuple[str, str]], now: int
) -> list[Query]:
    if case.endpoint == "error_detail":  # drill into the tenant's most frequent error group
        errors = errors_query(TABLE, parse_request("errors", tenant, pairs, now))
        fingerprint = store.query_sync(*errors)[0]["fingerprint"]
        pairs = [*pairs, ("fingerprint", fingerprint)]
    if case.endpoint == "health":
        pairs = []
    return case.build(TABLE, parse_request(case.endpoint, tenant, [*pairs, *case.extra], now))


def time_scenario(
    store: EventStore, tenant: str, pairs: list[tuple[str, str]], now: int, runs: int
) -> dict[str, tuple[list[float], int]]:
    """Round-robin over the cases (one run of each, then the next round), so that load from
    other processes on the machine spreads over all cases instead of hitting one of them."""
    queries = {case.name: case_queries(store, case, tenant, pairs, now) for case in CASES}
    timings: dict[str, list[float]] = {name: [] for name in queries}
    rows: dict[str, int] = {}
    for attempt in range(runs + 1):
        for name, statements in queries.items():
            started = time.perf_counter()
            rows[name] = sum(len(store.query_sync(sql, params)) for sql, params in statements)
            if attempt:  # the first round warms caches and is not counted
                timings[name].append((time.perf_counter() - started) * 1000)
    return {name: (timings[name], rows[name]) for name in queries}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--store", type=Path, default=ROOT / "var" / "bench" / "store")
    parser.add_argument("--reuse", action="store_true", help="keep an existing store")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "query_results.md")
    args = parser.parse_args()

    now = int(time.time() * 1000)
    fill_info: dict[str, Any] = {}
    if not args.reuse and args.store.exists():
        shutil.rmtree(args.store)
    store = EventStore(f"chdb://{args.store}", TABLE)
    exists = store._connect().command(f"EXISTS TABLE {TABLE}") == 1
    if not exists or not args.reuse:
        print(f"filling {args.store} with ~{args.events:,} events ...", flush=True)
        fill_info = fill(store, args.events, args.tenants, args.days, now)
        (args.store / "bench-fill.json").write_text(json.dumps(fill_info), encoding="utf-8")
    else:
        store._ensure_schema()  # a store filled by an earlier TrackFlow is brought up to date
        newest = store.query_sync(
            f"SELECT toUnixTimestamp64Milli(max(timestamp)) AS t FROM {TABLE}"
        )
        now = int(newest[0]["t"]) + 1
        saved = args.store / "bench-fill.json"
        fill_info = json.loads(saved.read_text(encoding="utf-8")) if saved.exists() else {}
    wait_for_merges(store)
    facts = store_facts(store)
    print(f"store: {facts['rows']:,} rows, {facts['events']:,} distinct events, "
          f"{facts['parts']} parts, {facts['bytes'] / 1e6:.0f} MB", flush=True)  # fmt: skip

    ranked = facts["tenants"]
    largest, median = ranked[0], ranked[len(ranked) // 2]
    scenarios = [
        (f"largest tenant ({largest['tenant_id']}), 30 days", largest, 30 * DAY_MS),
        (f"largest tenant ({largest['tenant_id']}), 24 hours", largest, DAY_MS),
        (f"median tenant ({median['tenant_id']}), 30 days", median, 30 * DAY_MS),
    ]
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    for label, tenant, span in scenarios:
        pairs = [("from", str(now - span)), ("to", str(now))]
        print(f"\n{label}: {int(tenant['events']):,} events in store", flush=True)
        timed = time_scenario(store, tenant["tenant_id"], pairs, now, args.runs)
        for case in CASES:
            timings, rows = timed[case.name]
            result = {
                "scenario": label,
                "case": case.name,
                "p50": statistics.median(timings),
                "p95": p95(timings),
                "max": max(timings),
                "rows": rows,
            }
            results.append(result)
            print(f"  {case.name:36s} p50 {result['p50']:7.1f} ms  p95 {result['p95']:7.1f} ms  "
                  f"max {result['max']:7.1f} ms  ({rows} rows)", flush=True)  # fmt: skip
    facts["load"] = (load_before, os.getloadavg())
    store._close()
    write_report(args, facts, fill_info, scenarios, results)
    print(f"\nwrote {args.out}")
    return 0


def write_report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    fill_info: dict[str, Any],
    scenarios: list[tuple[str, dict[str, Any], int]],
    results: list[dict[str, Any]],
) -> None:
    import chdb

    lines = [
        "# Read API query benchmark",
        "",
        "Generated by `.venv/bin/python bench/query_bench.py` "
        f"(`--events {args.events} --tenants {args.tenants} --days {args.days} "
        f"--runs {args.runs}`).",
        "",
        "Every dashboard query built by `web/read/sql.py` (the SQL the worker runs), executed "
        "through `trackflow_app.store.EventStore` on an embedded chDB store, one query at a time "
        "(the worker also runs them one at a time on its store thread), after the background "
        "merges started by the fill have finished. Each figure is over "
        f"{args.runs} timed runs after one warm-up run; p95 is the nearest-rank 95th percentile.",
        "",
        "## Data",
        "",
        f"- {facts['rows']:,} stored rows = {facts['events']:,} distinct events + "
        f"{facts['rows'] - facts['events']:,} not-yet-merged redeliveries (1% of sessions "
        "inserted twice), over "
        f"{args.days} days, {len(facts['tenants'])} tenants; {facts['parts']} active parts, "
        f"{facts['bytes'] / 1e6:.0f} MB on disk.",
        f"- Largest tenant {facts['tenants'][0]['tenant_id']}: "
        f"{int(facts['tenants'][0]['events']):,} events; median tenant "
        f"{facts['tenants'][len(facts['tenants']) // 2]['tenant_id']}: "
        f"{int(facts['tenants'][len(facts['tenants']) // 2]['events']):,} events.",
    ]
    if fill_info:
        lines.append(
            f"- {fill_info['sessions']:,} sessions; filled in {fill_info['fill_s']:.0f} s "
            f"(INSERT ... SELECT in chunks of {SESSIONS_PER_INSERT:,} sessions)."
        )
    lines += [
        f"- Machine: {os.cpu_count()} CPU cores ({platform.machine()}), shared with other jobs "
        f"while this ran (1-minute load average {facts['load'][0][0]:.1f} before the timed runs, "
        f"{facts['load'][1][0]:.1f} after); chDB {chdb.__version__}, "
        f"Python {platform.python_version()}. The cases run round-robin, so that this load "
        "spreads over all of them.",
        "- The `events` table of schemas/events.sql (page URL, device, OS, browser and country "
        "stored LowCardinality) and its session-hour rollup (schemas/session_hours.sql, "
        f"{facts['rollup_rows']:,} rows): every figure counts distinct event ids (`uniqExact`, "
        "or `GROUP BY event_id` before percentiles); distinct sessions and users are counted "
        "over the 128-bit keys the store computes on insert (`session_key`, `user_key`), read "
        "from the rollup for the whole hours of a range in traffic and breakdowns; error "
        "groups, referrers and performance timings read the columns computed on insert "
        "(`error_fingerprint`, `referrer_host`, `referrer_internal`, `load_time`, "
        "`dom_content_loaded`).",
        "",
    ]
    for label, _tenant, _span in scenarios:
        rows = [r for r in results if r["scenario"] == label]
        lines += [
            f"## {label}",
            "",
            "| query | p50 ms | p95 ms | max ms | result rows |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['case']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {r['rows']} |"
            )
        dashboard = sum(r["p50"] for r in rows if r["case"] in DASHBOARD)
        dashboard95 = sum(r["p95"] for r in rows if r["case"] in DASHBOARD)
        lines += [
            "",
            f"Whole dashboard load (the {len(DASHBOARD)} queries it issues, run serially): "
            f"sum of p50 {dashboard:.0f} ms, sum of p95 {dashboard95:.0f} ms.",
            "",
        ]
    args.out.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
