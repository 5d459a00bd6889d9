"""What a worker and the broker spend per second with no load: the part of the CPU per event
that is paid per second rather than per event.

    .venv/bin/python -m bench.idle_cpu [--seconds 30] [--windows 1] [--worker-env K=V ...]

Starts a Kafka broker and one worker (with the sink and its chDB store) of its own, offers
1,000 events/s for 3 s so that every stage has run once, rests 8 s, then reads every thread's
CPU time from the kernel over ``--windows`` windows of ``--seconds`` with no load, and prints
one JSON document per window: milliseconds of CPU per second, the worker's by thread group
and the broker's by what its threads do (its JIT compiler settles over the first minutes).
Not a test and no thresholds: a figure for bench/tuning.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from bench.thread_cpu import (
    cpu_by_broker_thread_group,
    cpu_by_thread_group,
    thread_cpu,
    warmed_worker,
)


def per_second(cpu_by_group: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU-seconds by group over a window as milliseconds per second, largest first."""
    ranked = sorted(cpu_by_group.items(), key=lambda kv: -kv[1])
    return {name: round(cpu / seconds * 1000, 1) for name, cpu in ranked if cpu > 0}


def measure(seconds: float, windows: int, worker_env: dict[str, str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with warmed_worker(worker_env, rest_s=8) as (worker, broker_pids):
        assert worker.proc is not None
        pid = worker.proc.pid
        for _ in range(windows):
            worker0, started = thread_cpu(pid), time.monotonic()
            broker0 = thread_cpu(broker_pids[0]) if broker_pids else {}
            time.sleep(seconds)
            worker1, elapsed = thread_cpu(pid), time.monotonic() - started
            broker1 = thread_cpu(broker_pids[0]) if broker_pids else {}
            by_thread = cpu_by_thread_group(pid, worker0, worker1)
            by_broker = cpu_by_broker_thread_group(broker0, broker1)
            results.append(
                {
                    "worker_env": worker_env,
                    "seconds": round(elapsed, 1),
                    "worker_ms_per_s": round(sum(by_thread.values()) / elapsed * 1000, 1),
                    "worker_by_thread": per_second(by_thread, elapsed),
                    "broker_ms_per_s": round(sum(by_broker.values()) / elapsed * 1000, 1),
                    "broker_by_thread": per_second(by_broker, elapsed),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_cpu")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--windows", type=int, default=1)
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.worker_env)
    for window in measure(args.seconds, args.windows, env):
        print(orjson.dumps(window).decode())


if __name__ == "__main__":
    main()
