"""How long an event takes from the edge to a stored row at a fixed, low rate.

    .venv/bin/python -m bench.freshness_at_rate --rate 200 [--seconds 30] [--worker-env K=V ...]

Starts a Kafka broker and one worker (with the sink and its chDB store) of its own, warms it up
for 3 s at 1,000 events/s, offers ``--rate`` events/s open loop for ``--seconds`` with the
benchmark's generator (16 connections), stops the worker and reads ``inserted_at -
received_at`` of the rows received in that window from its store. Prints one JSON document:
the row count and the freshness percentiles in ms. For settings that trade delay for CPU at
low rates (``TRACKFLOW_RAW_FETCH_MAX_WAIT_MS``, the sink's window), where ``make bench``'s
steps are all far busier. Not a test and no thresholds: a figure for bench/tuning.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from bench.thread_cpu import loadgen, warmed_worker


def freshness_sql(since_ms: int) -> str:
    ms = "toUnixTimestamp64Milli"
    fresh = f"{ms}(inserted_at) - {ms}(received_at)"
    return (
        f"SELECT count() AS rows, quantileExact(0.5)({fresh}) AS p50, "
        f"quantileExact(0.9)({fresh}) AS p90, quantileExact(0.99)({fresh}) AS p99, "
        f"max({fresh}) AS max FROM events WHERE {ms}(received_at) >= {since_ms}"
    )


def measure(rate: float, seconds: float, worker_env: dict[str, str]) -> dict[str, Any]:
    with warmed_worker(worker_env, rest_s=3) as (worker, _broker_pids):
        since_ms = int(time.time() * 1000)
        sent = loadgen(f"{worker.base_url}/v1/batch", rate, seconds, seed=8, connections=16)
        time.sleep(3)  # the sink's last window
        worker.stop()
        (row,) = worker.query_store(freshness_sql(since_ms))
    return {"worker_env": worker_env, "rate": rate, "events_ok": sent["events_ok"], **row}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness_at_rate")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s, open loop")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.worker_env)
    print(orjson.dumps(measure(args.rate, args.seconds, env)).decode())


if __name__ == "__main__":
    main()
