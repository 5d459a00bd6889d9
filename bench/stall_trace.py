"""Where slow POSTs come from: one worker under a fixed, modest load, its slowest requests lined
up against what the worker and the broker were doing at that moment.

    .venv/bin/python -m bench.thread_cpu ...   # CPU per event
    .venv/bin/python -m bench.stall_trace --rate 3600 --seconds 60 [--worker-env K=V ...]

Starts a Kafka broker and one worker (sink and chDB store included) of its own, with the event
loop's stall watch and the slow-request log set low (``TRACKFLOW_LOOP_STALL_MS``,
``TRACKFLOW_SLOW_REQUEST_MS``), offers ``--rate`` events/s open loop in batches of the
benchmark's sizes over ``--connections`` connections, and samples the worker's /metrics every
``--sample-ms``. Prints one JSON document: client latency percentiles; the time each POST step
took (from the worker's histogram); loop stalls and garbage-collector pauses by where they were;
and for each of the slowest requests, what overlapped it: loop stalls, slow collections, sink
inserts, and the broker's pauses seen in its GC log. Not a test and no thresholds.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench.rig import worker_overrides
from bench.thread_cpu import broker_and_worker, loadgen
from bench.workload import tenant_keys
from harness.stack import Worker

PY = sys.executable
PHASES = ("body", "decode", "enqueue", "ack")
SLOWEST = ("--slowest", "20")
SAMPLED = (
    "trackflow_insert_seconds_count",
    "trackflow_insert_seconds_sum",
    *(f'trackflow_gc_pause_seconds_sum{{generation="{g}"}}' for g in range(3)),
    "trackflow_event_loop_lag_seconds_sum",
    "trackflow_sink_buffered_rows",
)


def sample_metrics(worker: Worker, every_s: float, stop: threading.Event) -> list[list[float]]:
    """(wall time, *SAMPLED) rows until ``stop`` is set."""
    rows: list[list[float]] = []
    while not stop.wait(every_s):
        with contextlib.suppress(Exception):
            rows.append([time.time(), *worker.metrics(*SAMPLED)])
    return rows


def phase_means_ms(worker: Worker) -> dict[str, float]:
    names = [
        f'trackflow_edge_phase_seconds_{kind}{{phase="{p}"}}'
        for p in PHASES
        for kind in ("sum", "count")
    ]
    values = worker.metrics(*names)
    return {
        phase: round(values[2 * i] / max(values[2 * i + 1], 1) * 1000, 2)
        for i, phase in enumerate(PHASES)
    }


def worker_events(log_path: Path, since: float) -> list[dict[str, Any]]:
    """The worker's JSON log lines at or after ``since`` (wall time) from the watch and the edge."""
    events = []
    for line in log_path.read_bytes().splitlines():
        if not line.startswith(b"{"):
            continue
        with contextlib.suppress(orjson.JSONDecodeError):
            entry = orjson.loads(line)
            at = datetime.fromisoformat(entry["ts"]).timestamp()
            if at >= since and entry["logger"] in ("trackflow_app.loop_watch", "web.phases"):
                events.append({"at": round(at, 3), "message": entry["message"]})
    return events


def stall_sites(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Where the loop was found stuck, by the innermost two frames, most frequent first."""
    sites: Counter[str] = Counter()
    for event in events:
        if ", at: " in event["message"]:
            frames = event["message"].split(", at: ", 1)[1].split(" <- ")
            sites[" <- ".join(frames[:2])] += 1
    return sites.most_common(10)


GC_PAUSE = re.compile(r"^\[([\d\-T:.+]+)\].*Pause.* (\d+\.\d+)ms$")


def broker_pauses(gc_log: Path, since: float) -> list[dict[str, float]]:
    """The broker JVM's pauses from its GC log (unified logging, -Xlog:gc with time decorations)."""
    if not gc_log.exists():
        return []
    pauses = []
    for line in gc_log.read_text(errors="replace").splitlines():
        match = GC_PAUSE.match(line)
        if match:
            at = datetime.fromisoformat(match.group(1)).timestamp()
            if at >= since:
                pauses.append({"at": round(at, 3), "ms": float(match.group(2))})
    return pauses


def overlapping(window: tuple[float, float], samples: list[list[float]]) -> dict[str, float]:
    """How much each sampled counter moved between the samples around ``window``."""
    start, end = window
    before = [row for row in samples if row[0] <= start]
    after = [row for row in samples if row[0] >= end]
    if not before or not after:
        return {}
    a, b = before[-1], after[0]
    return {
        "inserts": b[1] - a[1],
        "insert_ms": round((b[2] - a[2]) * 1000, 1),
        "gc_ms": round(sum(b[3:6]) * 1000 - sum(a[3:6]) * 1000, 1),
        "loop_lag_ms": round((b[6] - a[6]) * 1000, 1),
        "sampled_over_ms": round((b[0] - a[0]) * 1000),
    }


def slow_requests_in_context(
    slowest: list[dict[str, float]],
    samples: list[list[float]],
    events: list[dict[str, Any]],
    jvm: list[dict[str, float]],
) -> list[dict[str, Any]]:
    out = []
    for request in slowest:
        start = request["due"]
        end = start + request["latency_ms"] / 1000
        out.append(
            {
                **request,
                "worker": overlapping((start, end), samples),
                "worker_log": [e for e in events if start - 0.05 <= e["at"] <= end + 0.5][:4],
                "broker_pauses": [p for p in jvm if start - 0.05 <= p["at"] <= end],
            }
        )
    return out


def trace(args: argparse.Namespace) -> dict[str, Any]:
    # The broker's log and the store of a run take hundreds of MB: removed when the run ends.
    with tempfile.TemporaryDirectory(prefix="trackflow-stall-trace-") as work:
        return _trace(args, Path(work))


def _trace(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    env = {
        "TRACKFLOW_LOG_FORMAT": "json",
        "TRACKFLOW_LOOP_STALL_MS": str(args.stall_ms),
        "TRACKFLOW_SLOW_REQUEST_MS": str(args.stall_ms),
        **dict(item.split("=", 1) for item in args.worker_env),
    }
    overrides = worker_overrides(tenant_keys(40), tuple(env.items()))
    with broker_and_worker(work, overrides) as (_broker, worker, _pids):
        url = f"{worker.base_url}/v1/batch"
        loadgen(url, 1000, args.warmup_seconds, 7, connections=args.connections)
        time.sleep(2)
        stop = threading.Event()
        sampled: list[list[float]] = []
        sampler = threading.Thread(
            target=lambda: sampled.extend(sample_metrics(worker, args.sample_ms / 1000, stop))
        )
        since = time.time()
        sampler.start()
        result = loadgen(url, args.rate, args.seconds, 8, *SLOWEST, connections=args.connections)
        time.sleep(2)
        stop.set()
        sampler.join()
        phases = phase_means_ms(worker)
    events = worker_events(worker.log_path, since)
    jvm = broker_pauses(work / "kafka" / "logs" / "kafkaServer-gc.log", since)
    stalls = [e for e in events if e["message"].startswith("event loop was blocked")]
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "connections": args.connections,
        "worker_env": env,
        "accepted_events_per_s": result["accepted_events_per_s"],
        "latency_ms": {k: result["latency_ms"][k] for k in ("p50", "p90", "p99", "p999", "max")},
        "mean_phase_ms": phases,
        "loop_stalls": len(stalls),
        "loop_stall_ms_total": sum(float(e["message"].split()[-2]) for e in stalls),
        "stall_sites": stall_sites(events),
        "slow_posts_logged": sum(1 for e in events if e["message"].startswith("slow POST")),
        "broker_pauses_ms": sorted((p["ms"] for p in jvm), reverse=True)[:10],
        "slowest": slow_requests_in_context(result["slowest"], sampled, events, jvm),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stall_trace")
    parser.add_argument("--rate", type=float, default=3600.0, help="events/s, open loop")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=40)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--stall-ms", type=int, default=50, help="loop stall / slow POST bound")
    parser.add_argument("--sample-ms", type=int, default=200, help="/metrics sampling period")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE")
    print(orjson.dumps(trace(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
