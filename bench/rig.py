"""The measurement rig of ``bench.run`` and ``bench.profile``: run plans, the worker under
load with its monitor (metrics, CPU, RSS, consumer lag), and the probe and open-loop steps."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import psutil
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from harness.stack import ROOT, Worker

BENCH_DIR = Path(__file__).resolve().parent
PY = sys.executable
SINK_BATCH_SIZE = 5000  # trackflow_app.settings.Settings.sink_batch_size default
SINK_WINDOW_S = "0.5"  # the settings default (harness.stack uses 0.3 for speed)
PARTITIONS = 4  # raw and processed partition defaults


@dataclass(frozen=True)
class Plan:
    name: str
    steps: tuple[float, ...]  # fractions of the estimated maximum
    extra_steps: tuple[float, ...]  # tried only while the pipeline still keeps up
    step_s: float
    warmup_s: float  # skipped at the start of a step for steady-state rates
    probe_s: float
    drain_timeout_s: float
    connections: int
    tenants: int
    sessions: int
    kafka_events: int
    store_events: int
    http_s: float
    at80_s: float  # 0: no 80 %-of-sustained step
    thresholds: bool
    budget_s: float  # no new step starts once the run is this old (keeps CI's short run bounded)
    ingest_workers: int = 0  # extra workers with TRACKFLOW_SINK_ENABLED=false
    worker_env: tuple[tuple[str, str], ...] = ()  # extra variables for every worker (A/B runs)


FULL = Plan(
    name="full",
    steps=(0.25, 0.5, 0.75, 0.9, 1.0, 1.1),
    extra_steps=(1.25, 1.5, 1.75, 2.0, 2.5),
    step_s=20.0,
    warmup_s=4.0,
    probe_s=8.0,
    drain_timeout_s=90.0,
    connections=128,
    tenants=40,
    sessions=20_000,
    kafka_events=300_000,
    store_events=300_000,
    http_s=8.0,
    at80_s=600.0,  # also the "memory flat over a 10-minute run" window
    thresholds=True,
    budget_s=3600.0,
)
SHORT = Plan(
    name="short",
    steps=(0.5, 0.9, 1.2),
    extra_steps=(),
    step_s=5.0,
    warmup_s=1.5,
    probe_s=3.0,
    drain_timeout_s=12.0,
    connections=64,
    tenants=40,
    sessions=5000,
    kafka_events=30_000,
    store_events=30_000,
    http_s=3.0,
    at80_s=0.0,
    thresholds=False,
    budget_s=85.0,
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_module(module: str, *args: str, timeout: float = 600.0) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON document it prints."""
    proc = await asyncio.create_subprocess_exec(
        PY,
        "-m",
        module,
        *args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed ({proc.returncode}): {err.decode()[-3000:]}")
    result: dict[str, Any] = orjson.loads(out)
    return result


def loadgen_args(plan: Plan, url: str, seed: int, *extra: str) -> list[str]:
    return [
        "--url",
        url,
        "--connections",
        str(plan.connections),
        "--tenants",
        str(plan.tenants),
        "--sessions",
        str(plan.sessions),
        "--seed",
        str(seed),
        *extra,
    ]


# -- live observation of the worker --------------------------------------------------------
METRICS = {
    "rows": "trackflow_rows_inserted_total",
    "accepted": "trackflow_events_accepted_total",
    "processed": "trackflow_events_processed_total",
    "dead": "trackflow_events_dead_lettered_total",
    "buffered": "trackflow_sink_buffered_rows",
    "insert_failures": "trackflow_insert_failures_total",
    "rejected_requests": "trackflow_requests_rejected_total",
    "store_merges": "trackflow_store_merges",
    "store_merge_memory": "trackflow_store_merge_memory_bytes",
    "store_parts": "trackflow_store_active_parts",
}


def parse_metrics(text: str) -> dict[str, float]:
    values = dict.fromkeys(METRICS, 0.0)
    by_name = {v: k for k, v in METRICS.items()}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        key = by_name.get(name)
        if key is not None:
            values[key] += float(line.rsplit(" ", 1)[1])
    return values


class LagProbe:
    """Kafka end offsets minus committed offsets of a consumer group, summed over partitions."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self, group: str, topic: str, partitions: int = PARTITIONS) -> int:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await self.consumer.end_offsets(tps)
        committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
        total = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            total += max(ends.get(tp, 0) - done, 0)
        return total


class Monitor:
    """Samples the worker's /metrics, its CPU and RSS, the broker's CPU and consumer lag."""

    def __init__(
        self, worker: Worker, broker_pid: int | None, lag: LagProbe, ingest: list[Worker]
    ) -> None:
        self.worker = worker
        self.workers = [worker, *ingest]
        self.proc = psutil.Process(worker.proc.pid if worker.proc else 0)
        self.ingest_procs = [psutil.Process(w.proc.pid if w.proc else 0) for w in ingest]
        self.broker = psutil.Process(broker_pid) if broker_pid else None
        self.lag = lag
        self.samples: list[dict[str, float]] = []
        self.interval = 0.5
        self._stop = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        env = worker.env
        self.groups = {
            "lag_raw": (env["TRACKFLOW_APP_ID"], env["TRACKFLOW_RAW_TOPIC"]),
            "lag_processed": (env["TRACKFLOW_SINK_GROUP"], env["TRACKFLOW_PROCESSED_TOPIC"]),
        }

    async def sample(self) -> dict[str, float]:
        assert self.session is not None
        t = time.time()
        s: dict[str, float] = {}
        for worker in self.workers:  # counters summed over the worker with the sink and the rest
            async with self.session.get(f"{worker.base_url}/metrics") as resp:
                for key, value in parse_metrics(await resp.text()).items():
                    s[key] = s.get(key, 0.0) + value
        cpus = [p.cpu_times() for p in (self.proc, *self.ingest_procs)]
        s["t"] = t
        s["worker_cpu"] = sum(cpu.user + cpu.system for cpu in cpus)
        memory = self.proc.memory_info()
        s["worker_rss"] = float(memory.rss)
        # Anonymous memory (heap, arenas): RSS minus file-backed pages such as chDB's library.
        s["worker_rss_anon"] = float(memory.rss - memory.shared)
        if self.ingest_procs:
            s["ingest_rss"] = max(float(p.memory_info().rss) for p in self.ingest_procs)
        if self.broker is not None:
            bcpu = self.broker.cpu_times()
            s["broker_cpu"] = bcpu.user + bcpu.system
        for key, (group, topic) in self.groups.items():
            try:
                s[key] = float(await self.lag.lag(group, topic))
            except Exception:  # the group may not exist yet
                s[key] = float("nan")
        self.samples.append(s)
        return s

    async def run(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        while not self._stop.is_set():
            try:
                await self.sample()
            except (aiohttp.ClientError, TimeoutError, psutil.Error) as exc:
                log(f"monitor sample failed: {exc!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
        await self.session.close()

    def stop(self) -> None:
        self._stop.set()

    # -- series helpers --------------------------------------------------------------------
    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        pts = [(s["t"], s[key]) for s in self.samples if key in s]
        if not pts:
            return np.array([]), np.array([])
        t, v = zip(*pts, strict=True)
        return np.array(t), np.array(v)

    def at(self, key: str, t: float) -> float:
        ts, vs = self.series(key)
        return float(np.interp(t, ts, vs)) if ts.size else float("nan")

    def slope(self, key: str, t0: float, t1: float) -> float:
        ts, vs = self.series(key)
        mask = (ts >= t0) & (ts <= t1)
        if mask.sum() >= 3:
            return float(np.polyfit(ts[mask], vs[mask], 1)[0])
        return (self.at(key, t1) - self.at(key, t0)) / max(t1 - t0, 1e-9)

    def max_in(self, key: str, t0: float, t1: float) -> float:
        ts, vs = self.series(key)
        mask = (ts >= t0) & (ts <= t1)
        return float(vs[mask].max()) if mask.any() else float("nan")


async def drain(monitor: Monitor, timeout: float) -> tuple[float, bool]:
    """Wait until every accepted event is stored (or dead-lettered); return (time, drained)."""
    deadline = time.time() + timeout
    while True:
        s = await monitor.sample()
        if s["rows"] + s["dead"] >= s["accepted"] and s.get("lag_processed", 0) == 0:
            return s["t"], True
        if s["t"] >= deadline:
            return s["t"], False
        await asyncio.sleep(0.25)


# -- the stepped run -----------------------------------------------------------------------
@dataclass
class Bench:
    plan: Plan
    worker: Worker
    monitor: Monitor
    ingest: list[Worker] = dataclasses.field(default_factory=list)
    seed: int = 1000

    @property
    def url(self) -> str:
        """Every worker's edge, comma-separated: the load generator spreads batches over them."""
        return ",".join(f"{w.base_url}/v1/batch" for w in (self.worker, *self.ingest))

    def next_seed(self) -> int:
        self.seed += 1
        return self.seed

    async def loadgen(self, *args: str, seconds: float = 0.0) -> dict[str, Any]:
        extra = loadgen_args(self.plan, self.url, self.next_seed())
        # The generator builds its batches first and waits for its last answers after sending.
        return await run_module("bench.loadgen", *extra, *args, timeout=seconds + 600.0)

    async def probe(self) -> dict[str, Any]:
        plan = self.plan
        pool = str(int(plan.probe_s * 30_000))
        args = ["--mode", "saturate", "--duration", str(plan.probe_s), "--pool-events", pool]
        lg = await self.loadgen(*args)
        t0, t1 = lg["t_start"], lg["t_send_end"]
        await self.monitor.sample()
        drained_at, drained = await drain(self.monitor, plan.drain_timeout_s)
        m = self.monitor
        edge = lg["accepted_events_per_s"]
        e2e_probe = (m.at("rows", t1) - m.at("rows", t0)) / max(t1 - t0, 1e-9)
        backlog = m.at("accepted", t1) - m.at("rows", t1)
        drain_s = drained_at - t1
        drain_rate = (m.at("rows", drained_at) - m.at("rows", t1)) / drain_s if drain_s > 0 else 0
        if backlog > max(edge * 0.5, SINK_BATCH_SIZE) and drain_rate > 0:
            # One worker process: edge and downstream share its time. During the probe a share
            # `a` went to the edge; alone (the drain), downstream runs at drain_rate.
            edge_share = min(max(1.0 - e2e_probe / drain_rate, 0.05), 1.0)
            estimate = 1.0 / (edge_share / edge + 1.0 / drain_rate)
        else:
            estimate = edge  # downstream kept up with a saturated edge
        return {
            "loadgen": lg,
            "edge_events_per_s": edge,
            "e2e_during_probe": e2e_probe,
            "backlog_at_end": backlog,
            "drain_s": drain_s,
            "drained": drained,
            "drain_events_per_s": drain_rate,
            "estimate": estimate,
        }

    async def step(self, label: str, rate: float, duration: float) -> dict[str, Any]:
        plan = self.plan
        args = ["--mode", "open", "--rate", f"{rate:.1f}", "--duration", str(duration)]
        log(f"step {label}: {rate:,.0f} events/s for {duration:.0f}s")
        lg = await self.loadgen(*args, seconds=duration)
        m = self.monitor
        t0, t1 = lg["t_start"], lg["t_send_end"]
        end_sample = await m.sample()
        drained_at, drained = await drain(m, plan.drain_timeout_s)
        warm = t0 + min(plan.warmup_s, duration / 3)
        e2e_live = m.slope("rows", warm, t1)
        accepted = lg["accepted_events_per_s"]
        cpu = m.at("worker_cpu", drained_at) - m.at("worker_cpu", t0)
        bcpu = m.at("broker_cpu", t1) - m.at("broker_cpu", t0)
        p99 = lg["latency_ms"]["p99"]
        failed = sum(v for k, v in lg["statuses"].items() if k != "202")
        kept_up = bool(
            accepted >= 0.95 * rate and e2e_live >= 0.93 * rate and p99 < 1000 and failed == 0
        )
        result = {
            "label": label,
            "offered": rate,
            "duration": duration,
            "loadgen": lg,
            "t_start": t0,
            "t_send_end": t1,
            "t_drained": drained_at,
            "warmup_end": warm,
            "accepted": accepted,
            "e2e_live": e2e_live,
            "failed_requests": failed,
            "lag_raw_end": end_sample.get("lag_raw", float("nan")),
            "lag_processed_end": end_sample.get("lag_processed", float("nan")),
            "backlog_end": end_sample["accepted"] - end_sample["rows"],
            "drain_s": drained_at - t1,
            "drained": drained,
            "worker_cpu_s": cpu,
            "worker_cpu_share": (m.at("worker_cpu", t1) - m.at("worker_cpu", t0)) / (t1 - t0),
            "worker_cpu_s_per_million": cpu / max(lg["events_ok"], 1) * 1e6,
            "worker_rss_max": m.max_in("worker_rss", t0, drained_at),
            "store_merge_memory_max": m.max_in("store_merge_memory", t0, drained_at),
            "store_parts_max": m.max_in("store_parts", t0, drained_at),
            "broker_cpu_share": bcpu / (t1 - t0),
            "gen_cpu_share": lg["cpu_share"],
            "kept_up": kept_up,
        }
        log(
            f"  accepted {accepted:,.0f}/s, e2e {e2e_live:,.0f}/s, POST p99 {p99:.1f} ms, "
            f"backlog {result['backlog_end']:,.0f}, drain {result['drain_s']:.1f}s, "
            f"gen CPU {lg['cpu_share']:.0%}, kept up: {kept_up}"
        )
        return result


def worker_overrides(tenants: list[str], extra: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    return {
        "TRACKFLOW_API_KEYS": ",".join(tenants),
        "TRACKFLOW_SINK_WINDOW_S": SINK_WINDOW_S,
        "TRACKFLOW_STORE_STATS_INTERVAL_S": "1",
        # Clients reach the edge through a proxy on 127.0.0.1 that sets X-Forwarded-For, so the
        # per-IP rate limit sees thousands of client addresses, as in production.
        "TRACKFLOW_TRUSTED_PROXIES": "127.0.0.1",
        **dict(extra),
    }


def ingest_overrides(worker: Worker, base: dict[str, str]) -> dict[str, str]:
    """An ingest-only worker beside ``worker``: its topics and groups, no sink."""
    return {**base, "_topics": worker.name, "TRACKFLOW_SINK_ENABLED": "false"}


@contextlib.asynccontextmanager
async def running_worker(
    broker: Any,
    work: Path,
    tenants: list[str],
    broker_pid: int | None,
    ingest_workers: int,
    worker_env: tuple[tuple[str, str], ...] = (),
) -> AsyncIterator[tuple[Worker, list[Worker], Monitor]]:
    worker = Worker(broker=broker, workdir=work, overrides=worker_overrides(tenants, worker_env))
    ingest = [
        Worker(
            broker=broker,
            workdir=work,
            overrides=ingest_overrides(worker, worker_overrides(tenants, worker_env)),
        )
        for _ in range(ingest_workers)
    ]
    log(f"starting the worker{f' and {ingest_workers} ingest-only workers' if ingest else ''}")
    await asyncio.to_thread(worker.start, 180.0)
    for extra in ingest:
        await asyncio.to_thread(extra.start, 180.0)
    lag = LagProbe(broker.bootstrap)
    await lag.start()
    monitor = Monitor(worker, broker_pid, lag, ingest)
    task = asyncio.create_task(monitor.run())
    try:
        yield worker, ingest, monitor
    finally:
        monitor.stop()
        await task
        await lag.stop()
        for running in (*ingest, worker):
            if running.proc is not None and running.proc.poll() is None:
                await asyncio.to_thread(running.stop)


def broker_pid_of(work: Path, managed: bool) -> int | None:
    pidfile = work / "broker" / "kafka" / "kafka.pid"
    if managed and pidfile.exists():
        return int(pidfile.read_text().strip())
    return None
