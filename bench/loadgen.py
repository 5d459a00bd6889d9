"""Load generator, run in its own process: ``python -m bench.loadgen --url ... --rate ...``.

asyncio + uvloop + a pool of keep-alive connections per URL: by default `bench.rawhttp`'s
(prepared request bytes, httptools' parser, no task per request), or with ``--client aiohttp``
one aiohttp ClientSession, which costs the shared machine several times more CPU per request.

``--mode open`` (latency): open loop at a fixed arrival rate. Every request's send time is
scheduled before the clock starts (request i leaves when the events before it, at ``rate``
events/s, have been sent), and its latency is measured from that *scheduled* time: a stalled
server (or a stalled generator) shows up as latency rather than as fewer requests, so there is
no coordinated omission. A request waiting for a free pooled connection is waiting too.

``--mode saturate`` (throughput only): ``connections`` closed loops send back to back; this is
how the edge's and the B-http baseline's capacities are probed. Latencies from it are not
reported as latencies under load.

All bodies are built before the clock starts, so the generator's own CPU goes to HTTP only;
its CPU share (getrusage) is reported so a saturated generator can be told from a slow server.
The result is one JSON document on stdout (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import orjson
import uvloop

from bench.rawhttp import Pool, request_head
from bench.workload import Batch, Workload, stamp, tenant_keys

# uvloop's timers count whole milliseconds: a shorter sleep returns at once, and the schedule
# loop spun ~14 times per request waiting for the next one. Requests due within the same
# millisecond leave together; their latency still counts from when each was due.
MIN_SLEEP_S = 0.001


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return dict.fromkeys(("p50", "p90", "p99", "p999", "max", "mean"), float("nan"))
    p50, p90, p99, p999 = np.percentile(values, [50, 90, 99, 99.9])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "p999": float(p999),
        "max": float(values.max()),
        "mean": float(values.mean()),
    }


class Result:
    def __init__(self, n: int) -> None:
        self.latency = np.full(n, np.nan)  # s, from scheduled (open) or actual (saturate) send
        self.service = np.full(n, np.nan)  # s, from the moment it was handed to the HTTP client
        self.late = np.full(n, np.nan)  # s, dispatch lateness vs schedule (open loop)
        self.ok = np.zeros(n, dtype=bool)
        self.offset = np.zeros(n)  # s after the start at which the request was due
        self.statuses: Counter[str] = Counter()

    def record(self, i: int, due: float, started: float, status: str, ok: bool) -> None:
        """Request i's answer, now; ``due`` and ``started`` are perf_counter times."""
        end = time.perf_counter()
        self.latency[i] = end - due
        self.service[i] = end - started
        self.ok[i] = ok
        self.statuses[status] += 1


class Schedule:
    """An open loop's schedule: request i is due ``offsets[i]`` s after ``t0`` (perf_counter),
    when the events before it, at ``rate`` events/s, have gone out; cut at ``duration``."""

    def __init__(self, batches: list[Batch], rate: float, duration: float) -> None:
        sizes = np.array([b.events for b in batches], dtype=np.float64)
        offsets = np.concatenate(([0.0], np.cumsum(sizes)[:-1])) / rate
        self.n = int(np.searchsorted(offsets, duration, side="left"))
        self.offsets = offsets[: self.n]
        self.result = Result(self.n)
        self.result.offset[:] = self.offsets
        self.t0 = time.perf_counter() + 0.05
        self.wall0 = time.time() + (self.t0 - time.perf_counter())

    def due(self, i: int) -> float:
        """When request i is due, as a perf_counter time."""
        return self.t0 + float(self.offsets[i])

    def sent_ms(self, i: int) -> int:
        """Request i's scheduled send time, epoch ms: stamped into its body as sentAt."""
        return int((self.wall0 + self.offsets[i]) * 1000)

    async def dispatch(self, send: Callable[[int, float], None]) -> float:
        """Call ``send(i, now)`` for each request once it is due; the time the last one left."""
        i, n, t0, offsets = 0, self.n, self.t0, self.offsets
        while i < n:
            now = time.perf_counter()
            while i < n and t0 + offsets[i] <= now:
                self.result.late[i] = now - (t0 + offsets[i])
                send(i, now)
                i += 1
            if i < n:
                await asyncio.sleep(max(MIN_SLEEP_S, t0 + offsets[i] - time.perf_counter()))
        return time.perf_counter()

    def outcome(self, sent_until: float) -> tuple[Result, float, float, int]:
        """The results, the wall-clock start and end of sending, and how many requests."""
        return self.result, self.wall0, self.wall0 + (sent_until - self.t0), self.n


def batch_headers(batch: Batch) -> dict[str, str]:
    return {
        "Content-Type": batch.content_type,
        "User-Agent": batch.user_agent,
        "X-Forwarded-For": batch.client_ip,
    }


async def post(
    session: aiohttp.ClientSession, url: str, batch: Batch, sent_ms: int
) -> tuple[str, bool]:
    headers = batch_headers(batch)
    try:
        async with session.post(url, data=stamp(batch.body, sent_ms), headers=headers) as resp:
            await resp.read()
            return str(resp.status), resp.status == 202
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__, False


async def run_open(
    session: aiohttp.ClientSession,
    urls: list[str],
    batches: list[Batch],
    rate: float,
    duration: float,
) -> tuple[Result, float, float, int]:
    schedule = Schedule(batches, rate, duration)

    async def one(i: int, start: float) -> None:
        url = urls[i % len(urls)]
        status, ok = await post(session, url, batches[i], schedule.sent_ms(i))
        schedule.result.record(i, schedule.due(i), start, status, ok)

    tasks: set[asyncio.Task[None]] = set()

    def send(i: int, now: float) -> None:
        task = asyncio.create_task(one(i, now))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    sent_until = await schedule.dispatch(send)
    while tasks:
        await asyncio.gather(*list(tasks))
    return schedule.outcome(sent_until)


async def run_saturate(
    session: aiohttp.ClientSession,
    urls: list[str],
    batches: list[Batch],
    duration: float,
    connections: int,
    reuse: bool,
) -> tuple[Result, float, float, int]:
    cap = len(batches) * (50 if reuse else 1)
    res = Result(cap)
    res.late[:] = 0.0  # a closed loop sends each request as soon as it can
    wall0 = time.time()
    t0 = time.perf_counter()
    stop = t0 + duration
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while counter < cap and time.perf_counter() < stop:
            i = counter
            counter += 1
            start = time.perf_counter()
            url = urls[i % len(urls)]
            status, ok = await post(
                session, url, batches[i % len(batches)], int(time.time() * 1000)
            )
            res.record(i, start, start, status, ok)

    await asyncio.gather(*(worker() for _ in range(connections)))
    end_wall = wall0 + (time.perf_counter() - t0)
    return res, wall0, end_wall, counter


def request_bytes(host: str, path: str, batch: Batch, sent_ms: int) -> bytes:
    body = stamp(batch.body, sent_ms)
    return request_head(host, path, batch_headers(batch), len(body)) + body


def pools_for(
    urls: list[str],
    connections: int,
    batches: list[Batch],
    sent_ms: Callable[[int], int],
    record: Callable[[int, str, bool], None],
    next_request: Callable[[], int | None] | None = None,
) -> list[Pool]:
    """One pool per URL, the connections split evenly between them."""
    per_url = max(1, -(-connections // len(urls)))

    def builder(url: str) -> Callable[[int], bytes]:
        parts = urlsplit(url)
        host, path = parts.netloc, parts.path or "/"
        return lambda i: request_bytes(host, path, batches[i % len(batches)], sent_ms(i))

    return [Pool(url, per_url, builder(url), record, next_request) for url in urls]


async def raw_open(
    urls: list[str],
    connections: int,
    timeout: float,
    batches: list[Batch],
    rate: float,
    duration: float,
) -> tuple[Result, float, float, int]:
    schedule = Schedule(batches, rate, duration)
    started = np.zeros(schedule.n)

    def record(i: int, status: str, ok: bool) -> None:
        schedule.result.record(i, schedule.due(i), started[i], status, ok)

    pools = pools_for(urls, connections, batches, schedule.sent_ms, record)

    def send(i: int, now: float) -> None:
        started[i] = now
        pools[i % len(pools)].submit(i)

    sent_until = await schedule.dispatch(send)
    for pool in pools:
        await pool.drain(timeout)
    return schedule.outcome(sent_until)


async def raw_saturate(
    urls: list[str],
    connections: int,
    timeout: float,
    batches: list[Batch],
    duration: float,
    reuse: bool,
) -> tuple[Result, float, float, int]:
    cap = len(batches) * (50 if reuse else 1)
    res = Result(cap)
    res.late[:] = 0.0  # a closed loop sends each request as soon as it can
    started = np.zeros(cap)
    wall0 = time.time()
    t0 = time.perf_counter()
    stop = t0 + duration
    counter = 0
    clock = time.perf_counter

    def record(i: int, status: str, ok: bool) -> None:
        res.record(i, started[i], started[i], status, ok)

    def next_request() -> int | None:
        nonlocal counter
        if counter >= cap or clock() >= stop:
            return None
        i = counter
        counter += 1
        started[i] = clock()
        return i

    # Each URL's pool takes the next request, so the URLs share the closed loops' requests.
    pools = pools_for(
        urls, connections, batches, lambda _i: int(time.time() * 1000), record, next_request
    )
    for pool in pools:
        pool.start_closed_loops()
    while clock() < stop and counter < cap:
        await asyncio.sleep(0.05)
    for pool in pools:
        await pool.drain(timeout)
    end_wall = wall0 + (clock() - t0)
    return res, wall0, end_wall, counter


async def aiohttp_run(
    args: argparse.Namespace, urls: list[str], batches: list[Batch]
) -> tuple[Result, float, float, int]:
    connector = aiohttp.TCPConnector(limit=args.connections, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if args.mode == "open":
            return await run_open(session, urls, batches, args.rate, args.duration)
        return await run_saturate(
            session, urls, batches, args.duration, args.connections, args.reuse
        )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    prep_started = time.perf_counter()
    workload = Workload(tenant_keys(args.tenants), args.sessions, args.seed)
    if args.mode == "open":
        batches = workload.batches(int(args.rate * args.duration) + 1)
    else:
        batches = workload.batches(args.pool_events)
    prep_s = time.perf_counter() - prep_started
    # The prepared batches (500,000+ objects for a 10-minute step) would be walked by every full
    # collection: ~0.5 s with nothing else running, seconds on a loaded box, during which no
    # request leaves on time. Frozen, the collector never looks at them again.
    gc.collect()
    gc.freeze()

    urls = [url.strip() for url in args.url.split(",") if url.strip()]
    cpu0 = cpu_seconds()
    if args.client == "raw":
        if args.mode == "open":
            res, wall0, wall1, n = await raw_open(
                urls, args.connections, args.timeout, batches, args.rate, args.duration
            )
        else:
            res, wall0, wall1, n = await raw_saturate(
                urls, args.connections, args.timeout, batches, args.duration, args.reuse
            )
    else:
        res, wall0, wall1, n = await aiohttp_run(args, urls, batches)
    done_wall = time.time()
    cpu = cpu_seconds() - cpu0

    sizes = np.array([batches[i % len(batches)].events for i in range(n)])
    ok = res.ok[:n]
    events_ok = int(sizes[ok].sum())
    send_window = max(wall1 - wall0, 1e-9)
    return {
        "mode": args.mode,
        "url": args.url,
        "offered_events_per_s": args.rate if args.mode == "open" else None,
        "connections": args.connections,
        "client": args.client,
        "t_start": wall0,
        "t_send_end": wall1,
        "t_done": done_wall,
        "send_window_s": send_window,
        "requests": n,
        "requests_ok": int(ok.sum()),
        "events_sent": int(sizes.sum()),
        "events_ok": events_ok,
        # Over the send window or until the last answer, whichever is longer: a server that
        # falls behind an open loop answers late, and that shows here.
        "accepted_events_per_s": events_ok / max(send_window, done_wall - wall0),
        "accepted_requests_per_s": int(ok.sum()) / max(send_window, done_wall - wall0),
        "mean_batch": float(sizes.mean()) if n else 0.0,
        "statuses": dict(res.statuses),
        "latency_ms": percentiles(res.latency[:n][ok] * 1000),
        "service_ms": percentiles(res.service[:n][ok] * 1000),
        "dispatch_late_ms": percentiles(res.late[:n] * 1000),
        "slowest": slowest(res, ok, wall0, args.slowest) if args.mode == "open" else [],
        "cpu_s": cpu,
        "cpu_share": cpu / max(done_wall - wall0, 1e-9),
        "prep_s": prep_s,
    }


def slowest(res: Result, ok: np.ndarray, wall0: float, count: int) -> list[dict[str, float]]:
    """The ``count`` slowest accepted requests of an open loop: when each was due (wall clock,
    s) and how long its answer took, to line up with the worker's logs."""
    latency = np.where(ok, res.latency[: len(ok)], -1.0)
    worst = np.argsort(latency)[::-1][:count]
    return [
        {
            "due": round(wall0 + float(res.offset[i]), 3),
            "latency_ms": round(float(latency[i]) * 1000, 1),
        }
        for i in worst
        if latency[i] >= 0
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("--url", required=True, help="one URL, or several comma-separated (round-robin)")
    p.add_argument("--mode", choices=("open", "saturate"), default="open")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s (open loop)")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--tenants", type=int, default=40)
    p.add_argument("--sessions", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pool-events", type=int, default=100_000, help="saturate: bodies to build")
    p.add_argument("--reuse", action="store_true", help="saturate: cycle the pool (no dedup)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--out", default="-")
    p.add_argument(
        "--client",
        choices=("raw", "aiohttp"),
        default=os.environ.get("BENCH_HTTP_CLIENT", "raw"),
        help="raw: bench.rawhttp's lean pool (default); aiohttp: its ClientSession, for pairs "
        "against the generator of runs before 32 (or set BENCH_HTTP_CLIENT)",
    )
    p.add_argument("--slowest", type=int, default=0, help="open: list the N slowest requests")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = uvloop.run(main_async(args))
    data = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    if args.out == "-":
        sys.stdout.buffer.write(data + b"\n")
    else:
        with open(args.out, "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
