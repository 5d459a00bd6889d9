"""CPU per event by thread, POST latency and garbage collections of one worker at a fixed rate.

    .venv/bin/python -m bench.thread_cpu --rate 7000 --seconds 20 [--worker-env K=V ...]
        [--ingest-workers N] [--warmup-seconds S]

Starts a Kafka broker and one worker (with the sink and its chDB store) of its own, warms it up for
a few seconds, then offers ``--rate`` events/s open loop with the benchmark's generator and prints
one JSON document: the worker's CPU-µs per event split by thread (the event loop thread runs the
edge, the validate stage and the sink's mapping; chDB's threads are named by ClickHouse), the
broker's, POST latency percentiles and the Python collections per generation seen in /metrics, how
many of the edge's raw-batch writes Kafka acknowledged later than 10/25/50/100 ms, and the worker's
resident memory sampled every half second while the load runs, split into anonymous pages (Python's
heap, chDB's allocator, stacks) and file-backed ones (mostly chDB's library code, shared and
reclaimable), and the bytes each event added to each topic's log on the broker's disk (what
retention and replication carry). ``--worker-env`` sets worker variables for A/B runs, e.g.
``TRACKFLOW_GC_GEN0_THRESHOLD=0``. ``--ingest-workers 1`` adds an ingest-only worker
(``TRACKFLOW_SINK_ENABLED=false``, same variables) and spreads the load over both edges, as ``make
bench`` does; the figures by thread stay those of the worker with the sink. ``--warmup-seconds``
longer than 3 warms up at half the rate, so that the broker's JIT has settled. Not a test and no
thresholds: a figure for bench/tuning.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.procfs import memory_fields_mb, status_mb
from bench.rig import ingest_overrides, worker_overrides
from bench.workload import tenant_keys
from harness.stack import ROOT, Broker, Worker, start_broker

PY = sys.executable


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU-seconds per thread id, with the thread's name as the kernel knows it."""
    out: dict[int, tuple[str, float]] = {}
    for thread in psutil.Process(pid).threads():
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
            out[thread.id] = (name, thread.user_time + thread.system_time)
    return out


def system_seconds(pid: int, tid: int) -> float:
    """The kernel-mode CPU-seconds of one thread: its system calls and what they set off
    (a loopback TCP write delivers the segment to the receiving socket in the writer's call)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


RESIDENT_KINDS = {"VmRSS": "total", "RssAnon": "anonymous", "RssFile": "file-backed"}


def resident_mb(status: str) -> dict[str, float]:
    """Resident memory by kind, in MB, from the text of /proc/<pid>/status."""
    fields = memory_fields_mb(status)
    return {kind: fields[name] for name, kind in RESIDENT_KINDS.items() if name in fields}


def summarize_resident(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and max of each kind over the samples."""
    kinds = sorted({kind for sample in samples for kind in sample})
    return {
        kind: {
            "mean": round(sum(s[kind] for s in samples if kind in s) / len(samples)),
            "max": round(max(s.get(kind, 0.0) for s in samples)),
        }
        for kind in kinds
    }


@contextlib.contextmanager
def sampled_resident(pid: int, every_s: float = 0.5) -> Iterator[list[dict[str, float]]]:
    """Samples the process's resident memory by kind until the block ends."""
    samples: list[dict[str, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every_s):
            with contextlib.suppress(OSError):
                samples.append(resident_mb(Path(f"/proc/{pid}/status").read_text()))

    sampler = threading.Thread(target=sample, name="resident-sampler", daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        done.set()
        sampler.join()


def cpu_by_thread_group(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU-seconds spent between two samples, by thread name (the main thread on its own).

    Python's own threads keep the process's name; chDB's threads carry ClickHouse's names.
    """
    process_name = after[pid][0] if pid in after else ""
    groups: dict[str, float] = defaultdict(float)
    for tid, (name, cpu) in after.items():
        if tid == pid:
            label = "event loop (main thread)"
        elif name == process_name:
            label = "other Python threads (Faust's Kafka consumer, the store thread)"
        else:
            label = f"chDB {name}"
        groups[label] += cpu - before.get(tid, (name, 0.0))[1]
    return dict(groups)


# JVM thread names (as /proc shows them, cut to 15 characters) grouped by what they do.
BROKER_THREAD_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JIT compiler", ("C1 CompilerThre", "C2 CompilerThre")),
    ("garbage collector", ("G1 ", "GC Thread", "VM Thread", "VM Periodic")),
    # Request handlers and network threads share this 15-character prefix.
    ("requests and network", ("data-plane-kafk", "kafka-request-h", "kafka-network-t")),
    ("controller and raft", ("kafka-", "raft", "quorum", "controller", "broker-")),
)


def broker_thread_group(name: str) -> str:
    for group, prefixes in BROKER_THREAD_GROUPS:
        if name.startswith(prefixes):
            return group
    return f"other ({name})"


def cpu_by_broker_thread_group(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """The broker's CPU-seconds between two samples, by what its threads do."""
    groups: dict[str, float] = defaultdict(float)
    for tid, (name, cpu) in after.items():
        groups[broker_thread_group(name)] += cpu - before.get(tid, (name, 0.0))[1]
    return dict(groups)


GROUPING = ("trackflow_batches_accepted_total", "trackflow_raw_records_written_total")
PRODUCE_BUCKETS = ("0.01", "0.025", "0.05", "0.1")
GC_COLLECTIONS = [f'python_gc_collections_total{{generation="{g}"}}' for g in range(3)]
PRODUCE_ACKS = [
    "trackflow_produce_seconds_count",
    *(f'trackflow_produce_seconds_bucket{{le="{le}"}}' for le in PRODUCE_BUCKETS),
]


def counters(worker: Worker) -> tuple[list[float], list[float]]:
    """Python's collections per generation, and the edge's Kafka acknowledgements so far: how
    many, then how many within each of PRODUCE_BUCKETS."""
    values = worker.metrics(*GC_COLLECTIONS, *PRODUCE_ACKS)
    return values[:3], values[3:]


def loadgen(
    url: str, rate: float, seconds: float, seed: int, *extra: str, connections: int = 128
) -> dict[str, Any]:
    """One open-loop step of the benchmark's generator (its own process); its JSON result."""
    args = ["--url", url, "--rate", str(rate), "--duration", str(seconds), *extra]
    args += ["--connections", str(connections), "--sessions", "20000", "--seed", str(seed)]
    proc = subprocess.run(
        [PY, "-m", "bench.loadgen", *args], cwd=ROOT, check=True, capture_output=True
    )
    result: dict[str, Any] = orjson.loads(proc.stdout)
    return result


def topic_log_bytes(data_dir: Path) -> dict[str, int]:
    """Bytes in the log segments of each topic (all its partitions) in a broker's data folder."""
    sizes: dict[str, int] = defaultdict(int)
    for segment in data_dir.glob("*-*/*.log"):
        sizes[segment.parent.name.rpartition("-")[0]] += segment.stat().st_size
    return dict(sizes)


def log_bytes_per_event(
    before: dict[str, int], after: dict[str, int], names: dict[str, str], events: int
) -> dict[str, float]:
    """Bytes per event added to the topics in ``names`` (topic -> the role it is reported as)."""
    return {
        role: round((after.get(topic, 0) - before.get(topic, 0)) / events, 1)
        for topic, role in names.items()
        if topic in after
    }


def process_cpu(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


@contextlib.contextmanager
def broker_and_worker(
    work: Path, overrides: dict[str, str]
) -> Iterator[tuple[Broker, Worker, list[int]]]:
    """A broker and one worker (sink and chDB store included) of their own in ``work``, and the
    broker's process ids (none when an existing broker is used); the worker stops on exit."""
    with contextlib.contextmanager(start_broker)(work) as broker:
        pidfile = work / "kafka" / "kafka.pid"
        broker_pids = [int(pidfile.read_text())] if pidfile.exists() else []
        worker = Worker(broker=broker, workdir=work, overrides=overrides).start(180)
        try:
            yield broker, worker, broker_pids
        finally:
            worker.stop()


@contextlib.contextmanager
def warmed_worker(worker_env: dict[str, str], rest_s: float) -> Iterator[tuple[Worker, list[int]]]:
    """A broker and one worker of their own in a temporary directory, after 3 s at 1,000 ev/s
    (every stage has run once) and ``rest_s`` of rest; the worker and the broker's process ids."""
    overrides = worker_overrides(tenant_keys(40), tuple(worker_env.items()))
    with (
        tempfile.TemporaryDirectory(prefix="trackflow-bench-") as work,
        broker_and_worker(Path(work), overrides) as (_broker, worker, broker_pids),
    ):
        loadgen(f"{worker.base_url}/v1/batch", 1000.0, 3.0, seed=7)
        time.sleep(rest_s)
        yield worker, broker_pids


def measure(
    rate: float,
    seconds: float,
    worker_env: dict[str, str],
    ingest_workers: int = 0,
    warmup_seconds: float = 3.0,
) -> dict[str, Any]:
    # The broker's log and the store of a run take 1-3 GB: removed when the run ends.
    with tempfile.TemporaryDirectory(prefix="trackflow-thread-cpu-") as work:
        return _measure(Path(work), rate, seconds, worker_env, ingest_workers, warmup_seconds)


def _measure(
    work: Path,
    rate: float,
    seconds: float,
    worker_env: dict[str, str],
    ingest_workers: int,
    warmup_seconds: float,
) -> dict[str, Any]:
    # A longer warm-up runs at half the rate: the broker's JIT settles before the clock starts.
    warmup_rate = 1000.0 if warmup_seconds <= 3 else rate / 2
    overrides = worker_overrides(tenant_keys(40), tuple(worker_env.items()))
    broker_data = work / "kafka" / "data"  # absent when an existing broker is used
    with broker_and_worker(work, overrides) as (broker, worker, broker_pids):
        assert worker.proc is not None
        pid = worker.proc.pid
        env = worker.env
        topics = {env["TRACKFLOW_RAW_TOPIC"]: "raw", env["TRACKFLOW_PROCESSED_TOPIC"]: "processed"}
        ingest: list[Worker] = []
        try:
            for _ in range(ingest_workers):
                extra = ingest_overrides(worker, overrides)
                ingest.append(Worker(broker=broker, workdir=work, overrides=extra).start(180))
            ingest_pids = [extra.proc.pid for extra in ingest if extra.proc is not None]
            url = ",".join(f"{w.base_url}/v1/batch" for w in (worker, *ingest))
            loadgen(url, warmup_rate, warmup_seconds, seed=7)  # warm-up
            time.sleep(3)
            threads0, (gc0, acks0) = thread_cpu(pid), counters(worker)
            loop_system0 = system_seconds(pid, pid)
            broker0 = process_cpu(broker_pids)
            broker_threads0 = thread_cpu(broker_pids[0]) if broker_pids else {}
            ingest0 = process_cpu(ingest_pids)
            logs0 = topic_log_bytes(broker_data)
            with sampled_resident(pid) as resident:
                result = loadgen(url, rate, seconds, seed=8)
            time.sleep(3)  # the sink's last window
            threads1, (gc1, acks1) = thread_cpu(pid), counters(worker)
            loop_system1 = system_seconds(pid, pid)
            batches, records = worker.metrics(*GROUPING)
            peak_rss_mb = status_mb(pid).get("VmHWM", 0.0)
            broker1 = process_cpu(broker_pids)
            broker_threads1 = thread_cpu(broker_pids[0]) if broker_pids else {}
            ingest1 = process_cpu(ingest_pids)
            logs1 = topic_log_bytes(broker_data)
        finally:
            for running in ingest:
                running.stop()
    events = max(int(result["events_ok"]), 1)
    by_thread = cpu_by_thread_group(pid, threads0, threads1)
    per_event = {
        name: round(cpu / events * 1e6, 1)
        for name, cpu in sorted(by_thread.items(), key=lambda kv: -kv[1])
        if cpu > 0.01
    }
    return {
        "rate": rate,
        "seconds": seconds,
        "worker_env": worker_env,
        "events": events,
        "accepted_events_per_s": result["accepted_events_per_s"],
        "post_latency_ms": {k: result["latency_ms"][k] for k in ("p50", "p99", "p999", "max")},
        "generator_cpu_share": result["cpu_share"],
        "worker_cpu_us_per_event": round(sum(by_thread.values()) / events * 1e6, 1),
        "worker_cpu_us_per_event_by_thread": per_event,
        "worker_peak_rss_mb": round(peak_rss_mb),
        "worker_resident_mb_under_load": summarize_resident(resident) if resident else {},
        # The edge's group commit: requests answered per raw record over the whole run.
        "batches_per_raw_record": round(batches / max(records, 1), 2),
        "event_loop_system_cpu_us_per_event": round(
            (loop_system1 - loop_system0) / events * 1e6, 1
        ),
        "ingest_workers_cpu_us_per_event": round((ingest1 - ingest0) / events * 1e6, 1),
        "broker_cpu_us_per_event": round((broker1 - broker0) / events * 1e6, 1),
        "broker_cpu_us_per_event_by_thread": {
            name: round(cpu / events * 1e6, 1)
            for name, cpu in sorted(
                cpu_by_broker_thread_group(broker_threads0, broker_threads1).items(),
                key=lambda kv: -kv[1],
            )
            if cpu > 0.01
        },
        "kafka_log_bytes_per_event": log_bytes_per_event(logs0, logs1, topics, events),
        "gc_collections_by_generation": [int(b - a) for a, b in zip(gc0, gc1, strict=True)],
        # Share of the edge's raw-batch writes acknowledged by Kafka later than each bound.
        "produce_ack_share_slower_than_s": {
            le: round(1 - (acks1[i] - acks0[i]) / max(acks1[0] - acks0[0], 1), 4)
            for i, le in enumerate(PRODUCE_BUCKETS, start=1)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.thread_cpu")
    parser.add_argument("--rate", type=float, default=7000.0, help="events/s, open loop")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ingest-workers", type=int, default=0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.worker_env)
    result = measure(args.rate, args.seconds, env, args.ingest_workers, args.warmup_seconds)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
