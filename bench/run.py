"""TrackFlow ingestion benchmark: ``python -m bench.run --full|--short|--profile``.

One run, one machine: baselines first (B-http, B-store, then B-kafka on the run's own broker),
then a real broker and a real worker (harness.stack), a saturating probe to estimate the
pipeline's maximum, open-loop steps at fractions of it until the pipeline stops keeping up, and
(full run) a step at 80 % of the sustained rate for the latency/freshness targets. The store is
read after the worker stopped. Writes bench/results.md, bench/results.png, bench/results.json.
See bench/README.md for what every figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import orjson
import psutil

from bench import profile, report
from bench.pauses import PauseWatch
from bench.procfs import status_mb
from bench.rig import (
    BENCH_DIR,
    FULL,
    PY,
    SHORT,
    SINK_BATCH_SIZE,
    Bench,
    Plan,
    broker_pid_of,
    drain,
    loadgen_args,
    log,
    run_module,
    running_worker,
)
from bench.workload import tenant_keys
from harness.stack import ROOT, free_port, start_broker


# -- baselines -------------------------------------------------------------------------------
async def baseline_http(plan: Plan) -> dict[str, Any]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        PY, "-m", "bench.http_baseline", "--port", str(port), cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        await asyncio.wait_for(server.stdout.readline(), 30)
        url = f"http://127.0.0.1:{port}/v1/batch"
        pool = str(int(plan.http_s * 20_000))
        args = ["--mode", "saturate", "--duration", str(plan.http_s), "--pool-events", pool]
        result = await run_module("bench.loadgen", *loadgen_args(plan, url, 101), *args, "--reuse")
        server_proc = psutil.Process(server.pid)
        result["server_cpu_s"] = sum(server_proc.cpu_times()[:2])
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        await server.wait()


def peak_rss(pid: int) -> float:
    """VmHWM: the kernel's high-water mark of the process's resident set, in bytes."""
    return status_mb(pid).get("VmHWM", float("nan")) * 1024 * 1024


def store_sql(steps: list[dict[str, Any]]) -> str:
    """One query for the whole run (each `python -m trackflow_app query` costs an import)."""
    ms = "toUnixTimestamp64Milli"
    parts = [
        "SELECT 'total' AS label, (SELECT count() FROM events) AS n, "
        "(SELECT uniqExact(event_id) FROM events) AS uniq, "
        "(SELECT count() FROM events FINAL) AS n_final, 0 AS e2e_n, "
        "0 AS f50, 0 AS f99, 0 AS fmax, 0 AS s50, 0 AS s99, 0 AS smax, 0 AS p50, 0 AS p99"
    ]
    for s in steps:
        a, b = int(s["t_start"] * 1000), int(s["t_send_end"] * 1000) + 1
        wa, wb = int(s["warmup_end"] * 1000), int(s["t_send_end"] * 1000)
        fresh = f"{ms}(inserted_at) - {ms}(received_at)"
        sched = f"{ms}(inserted_at) - {ms}(client_timestamp)"
        post = f"{ms}(received_at) - {ms}(client_timestamp)"
        parts.append(
            f"SELECT '{s['label']}', count(), uniqExact(event_id), 0, "
            f"(SELECT count() FROM events WHERE {ms}(inserted_at) BETWEEN {wa} AND {wb}), "
            f"quantileExact(0.5)({fresh}), quantileExact(0.99)({fresh}), max({fresh}), "
            f"quantileExact(0.5)({sched}), quantileExact(0.99)({sched}), max({sched}), "
            f"quantileExact(0.5)({post}), quantileExact(0.99)({post}) "
            f"FROM events WHERE {ms}(client_timestamp) BETWEEN {a} AND {b}"
        )
    return " UNION ALL ".join(parts)


async def measure_trackflow(
    plan: Plan,
    broker: Any,
    broker_pid: int | None,
    work: Path,
    max_rate: float | None,
    started: float,
) -> dict[str, Any]:
    tenants = tenant_keys(plan.tenants)
    out: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    async with running_worker(
        broker, work, tenants, broker_pid, plan.ingest_workers, plan.worker_env
    ) as (
        worker,
        ingest,
        monitor,
    ):
        assert worker.proc is not None
        bench = Bench(plan, worker, monitor, ingest)
        log("probe: saturating the edge")
        probe = await bench.probe()
        out["probe"] = probe
        log(
            f"  edge {probe['edge_events_per_s']:,.0f}/s, e2e during probe "
            f"{probe['e2e_during_probe']:,.0f}/s, drain {probe['drain_events_per_s']:,.0f}/s "
            f"-> estimated max {probe['estimate']:,.0f}/s"
        )
        estimate = max_rate or probe["estimate"]
        out["estimate"] = estimate
        for fractions in (plan.steps, plan.extra_steps):
            if steps and not steps[-1]["kept_up"]:
                break
            for fraction in fractions:
                if time.time() - started > plan.budget_s:
                    log(f"time budget of {plan.budget_s:.0f}s spent: no more steps")
                    out["budget_exhausted"] = True
                    break
                result = await bench.step(f"{fraction:.0%}", fraction * estimate, plan.step_s)
                result["fraction"] = fraction
                steps.append(result)
                if not result["kept_up"]:
                    break
        kept = [s["e2e_live"] for s in steps if s["kept_up"]]
        sustained_live = max(kept) if kept else min(s["e2e_live"] for s in steps)
        out["sustained_live"] = sustained_live
        if plan.at80_s:
            at80 = await bench.step("80% sust.", 0.8 * sustained_live, plan.at80_s)
            at80["fraction"] = None
            out["at80_label"] = at80["label"]
            steps.append(at80)
        await drain(monitor, plan.drain_timeout_s)
        await asyncio.sleep(2.0)  # Faust commits the raw topic's offsets every second
        out["final"] = await monitor.sample()
        out["worker_peak_rss"] = peak_rss(worker.proc.pid)
        out["ingest_peak_rss"] = [peak_rss(w.proc.pid) for w in ingest if w.proc is not None]
        out["worker_cpu_total_s"] = out["final"]["worker_cpu"]
        monitor.stop()
        for extra in ingest:
            await asyncio.to_thread(extra.stop)
        stop_started = time.time()
        out["worker_exit_code"] = await asyncio.to_thread(worker.stop)
        out["worker_stop_s"] = time.time() - stop_started
    out["steps"] = steps
    out["samples"] = monitor.samples
    log("reading the store")
    rows = await asyncio.to_thread(worker.query_store, store_sql(steps))
    by_label = {r["label"]: r for r in rows}
    out["store_totals"] = by_label.pop("total")
    for s in steps:
        r = by_label.get(s["label"], {})
        window = max(s["t_send_end"] - s["warmup_end"], 1e-9)
        s["store"] = r
        s["e2e"] = float(r.get("e2e_n", 0)) / window
    out["worker_log"] = str(worker.log_path)
    out["worker_env"] = {k: v for k, v in worker.env.items() if k.startswith("TRACKFLOW_")}
    out["worker_env"]["TRACKFLOW_API_KEYS"] = f"<{len(tenants)} tenant keys>"
    return out


async def run_bench(plan: Plan, max_rate: float | None, keep: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="trackflow-bench-"))
    started = time.time()
    pause_watch = PauseWatch().start()
    results: dict[str, Any] = {
        "plan": plan.__dict__,
        "started": started,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
            "python": sys.version.split()[0],
        },
        "workdir": str(work),
    }
    try:
        log(f"plan {plan.name}; workdir {work}")
        log("B-http: aiohttp parse-only server, saturated by the load generator")
        results["b_http"] = await baseline_http(plan)
        log(f"  {results['b_http']['accepted_events_per_s']:,.0f} events/s")
        log("B-store: the sink's inserts of processed records into a fresh chDB store")
        results["b_store"] = await run_module(
            "bench.store_baseline",
            "--path",
            str(work / "b-store"),
            "--events",
            str(plan.store_events),
            "--batch-size",
            str(SINK_BATCH_SIZE),
        )
        log(f"  {results['b_store']['events_per_s']:,.0f} events/s")
        log("starting Kafka")
        with contextlib.ExitStack() as stack:
            broker = stack.enter_context(contextlib.contextmanager(start_broker)(work / "broker"))
            broker_pid = broker_pid_of(work, broker.managed)
            log("B-kafka: aiokafka produce + consume, one message per event, acks=all")
            results["b_kafka"] = await run_module(
                "bench.kafka_baseline",
                "--bootstrap",
                broker.bootstrap,
                "--events",
                str(plan.kafka_events),
            )
            log(f"  {results['b_kafka']['events_per_s']:,.0f} events/s")
            results["trackflow"] = await measure_trackflow(
                plan, broker, broker_pid, work, max_rate, started
            )
            log("stopping Kafka")
    finally:
        results["elapsed_s"] = time.time() - started
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        results["machine"]["pauses"] = pause_watch.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--full", action="store_true", help="the full stepped run (make bench)")
    which.add_argument("--short", action="store_true", help="CI smoke run, < 2 min, no targets")
    which.add_argument("--profile", action="store_true", help="py-spy the worker under load")
    p.add_argument("--max-rate", type=float, help="skip the estimate: steps are %% of this")
    p.add_argument("--profile-seconds", type=float, default=20.0)
    p.add_argument("--step-seconds", type=float, help="override the plan's step duration")
    p.add_argument("--at80-seconds", type=float, help="override the 80 %%-step duration")
    p.add_argument(
        "--ingest-workers",
        type=int,
        default=0,
        help="extra workers without a sink (TRACKFLOW_SINK_ENABLED=false) next to the one with it",
    )
    p.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a variable for every worker, e.g. to A/B a setting (repeatable)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    p.add_argument("--out", default=str(BENCH_DIR), help="where results.* are written")
    args = p.parse_args(argv)
    if args.profile:
        return profile.main(args)
    plan = FULL if args.full else SHORT
    if args.step_seconds:
        plan = dataclasses.replace(plan, step_s=args.step_seconds)
    if args.at80_seconds is not None:
        plan = dataclasses.replace(plan, at80_s=args.at80_seconds)
    if args.ingest_workers:
        plan = dataclasses.replace(plan, ingest_workers=args.ingest_workers)
    if args.worker_env:
        pairs = tuple(tuple(item.split("=", 1)) for item in args.worker_env)
        plan = dataclasses.replace(plan, worker_env=cast(tuple[tuple[str, str], ...], pairs))
    results = asyncio.run(run_bench(plan, args.max_rate, args.keep))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    summary = report.write(results, out)
    print(summary)
    log(f"done in {results['elapsed_s']:.0f}s: {out / 'results.md'}, {out / 'results.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
