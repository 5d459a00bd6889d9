"""``python -m bench.run --profile``: sample the worker with py-spy during one open-loop step.

Starts a broker and a worker like the benchmark, estimates the maximum with the same probe (or
takes ``--max-rate``), then records the worker with ``py-spy record --format raw`` while the
load generator offers 70 % of that rate. Idle waits (select, condition and queue waits) are
dropped, so the shares are shares of the worker's busy samples. Writes py-spy's collapsed
stacks to bench/profile-stacks.txt.gz and a summary by stage and function to
bench/profile-top.md; the interpretation and tuning advice live in bench/profile.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.report import num, table
from bench.rig import (
    BENCH_DIR,
    SHORT,
    Bench,
    broker_pid_of,
    log,
    running_worker,
)
from bench.workload import tenant_keys
from harness.stack import start_broker

PY_SPY = Path(sys.executable).parent / "py-spy"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")

# A stack belongs to the stage of the project frame nearest its leaf.
PROJECT_STAGES = (
    ("web/views.py", "edge view (web/views.py, web/edge.py)"),
    ("web/edge.py", "edge view (web/views.py, web/edge.py)"),
    ("web/ratelimit.py", "edge view (web/views.py, web/edge.py)"),
    ("agents/stream.py", "validate agent (agents/stream.py, agents/validate.py)"),
    ("agents/validate.py", "validate agent (agents/stream.py, agents/validate.py)"),
    ("agents/sanitize.py", "validate agent (agents/stream.py, agents/validate.py)"),
    ("agents/geo.py", "validate agent (agents/stream.py, agents/validate.py)"),
    ("agents/sink.py", "sink (agents/sink.py, rows, store thread)"),
    ("agents/rows.py", "sink (agents/sink.py, rows, store thread)"),
    ("agents/buffer.py", "sink (agents/sink.py, rows, store thread)"),
    ("trackflow_app/store.py", "sink (agents/sink.py, rows, store thread)"),
    ("trackflow_app/metrics.py", "metrics"),
)
# Otherwise, by the libraries on the stack (checked in this order).
LIBRARY_STAGES = (
    ("prometheus_client", "metrics"),
    ("clickhouse_connect", "sink (agents/sink.py, rows, store thread)"),
    ("aiokafka", "Kafka client (producer sender, fetcher; outside any stage)"),
    ("aiohttp", "HTTP server (aiohttp, outside the view)"),
    ("faust", "event loop / Faust runtime (no stage frame)"),
    ("mode", "event loop / Faust runtime (no stage frame)"),
    ("asyncio", "event loop"),
    ("uvloop", "event loop"),
)


def parse_frame(frame: str) -> tuple[str, str]:
    """(function, file) of one py-spy frame ``func (path/file.py:line)``."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m["func"], m["file"]


def short_file(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def stage_of(frames: list[tuple[str, str]]) -> str:
    for _, file in reversed(frames):
        for suffix, stage in PROJECT_STAGES:
            if file.endswith(suffix):
                return stage
    files = " ".join(f for _, f in frames)
    for lib, stage in LIBRARY_STAGES:
        if f"/{lib}/" in files or f"{lib}/" in files:
            return stage
    return "other"


# Leaves where a thread waits rather than computes (py-spy's own idle detection misses some).
IDLE_LEAVES = {
    ("EpollSelector.select", "selectors.py"),
    ("select", "selectors.py"),
    ("Condition.wait", "threading.py"),
    ("Event.wait", "threading.py"),
    ("wait", "threading.py"),
    ("_worker", "concurrent/futures/thread.py"),
}


def is_idle(frames: list[tuple[str, str]]) -> bool:
    func, file = frames[-1]
    if not any(file.endswith(suffix) for f, suffix in IDLE_LEAVES if f == func):
        return False
    # The event loop blocked in Thread.start() waits, but it stalls every request: keep it.
    return not any(f == "Thread.start" for f, _ in frames)


def summarize(stacks_path: Path, rate_hz: int, context: dict[str, Any]) -> str:
    stages: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    stage_self: dict[str, Counter[str]] = {}
    total = 0
    idle = 0
    for line in stacks_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = [p for p in stack.split(";") if p]
        frames = [
            parse_frame(p)
            for p in parts
            if not p.startswith("process ") and not p.startswith("thread ")
        ]
        if not frames:
            continue
        if is_idle(frames):
            idle += count
            continue
        total += count
        stage = stage_of(frames)
        stages[stage] += count
        names = [f"{func} ({short_file(file)})" for func, file in frames]
        self_time[names[-1]] += count
        stage_self.setdefault(stage, Counter())[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if total == 0:
        return "py-spy recorded no samples.\n"

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f} %"

    out = [
        "# Worker profile (generated by `python -m bench.run --profile`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}: py-spy at {rate_hz} Hz on the worker while the "
        f"load generator offered {num(context['rate'])} events/s for "
        f"{context['seconds']:.0f} s (70 % of the estimated maximum {num(context['estimate'])}/s"
        f"); accepted {num(context['accepted'])}/s, e2e {num(context['e2e'])}/s, worker CPU "
        f"{context['cpu_share']:.0%} of one core, {num(context['cpu_per_million'])} CPU-s per "
        f"million events. {total:,} busy samples across all threads ({idle:,} more samples of "
        "threads waiting in select/condition/queue waits were dropped). The event loop blocked "
        "in Thread.start() is counted as busy. Shared, loaded machine: shares are indicative.",
        "",
        "## Busy samples by stage",
        "",
        table(
            ["stage", "samples", "share"],
            [[s, f"{n:,}", pct(n)] for s, n in stages.most_common()],
        ),
        "",
        "## Top functions by self time (the frame that was running)",
        "",
        table(
            ["function (file)", "self", "share"],
            [[f"`{n}`", f"{c:,}", pct(c)] for n, c in self_time.most_common(30)],
        ),
        "",
        "## Top functions by inclusive time (on the stack)",
        "",
        table(
            ["function (file)", "inclusive", "share"],
            [[f"`{n}`", f"{c:,}", pct(c)] for n, c in inclusive.most_common(45)],
        ),
        "",
        "## Self time within each stage (top 10)",
        "",
    ]
    for stage, _ in stages.most_common():
        out += [f"### {stage}", ""]
        rows = [[f"`{n}`", f"{c:,}", pct(c)] for n, c in stage_self[stage].most_common(10)]
        out += [table(["function (file)", "self", "share of all"], rows), ""]
    return "\n".join(out)


async def profile_run(args: argparse.Namespace) -> int:
    plan = SHORT
    seconds = float(args.profile_seconds)
    rate_hz = 100
    work = Path(tempfile.mkdtemp(prefix="trackflow-profile-"))
    stacks = work / "pyspy-raw.txt"
    context: dict[str, Any] = {"seconds": seconds}
    try:
        with contextlib.ExitStack() as stack:
            broker = stack.enter_context(contextlib.contextmanager(start_broker)(work / "broker"))
            broker_pid = broker_pid_of(work, broker.managed)
            tenants = tenant_keys(plan.tenants)
            async with running_worker(broker, work, tenants, broker_pid, 0) as (
                worker,
                _ingest,
                monitor,
            ):
                assert worker.proc is not None
                bench = Bench(plan, worker, monitor)
                if args.max_rate:
                    estimate = float(args.max_rate)
                else:
                    log("probe: saturating the edge")
                    estimate = (await bench.probe())["estimate"]
                rate = 0.7 * estimate
                context.update(estimate=estimate, rate=rate)
                spy = await asyncio.create_subprocess_exec(
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(worker.proc.pid),
                    "--rate",
                    str(rate_hz),
                    "--format",
                    "raw",
                    "--output",
                    str(stacks),
                    "--duration",
                    str(int(seconds + 2)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                await asyncio.sleep(1.0)  # attach before the load starts
                step = await bench.step("profile", rate, seconds)
                _, err = await spy.communicate()
                if spy.returncode != 0 or not stacks.exists():
                    log(f"py-spy failed ({spy.returncode}): {err.decode()[-2000:]}")
                    return 1
                context.update(
                    accepted=step["accepted"],
                    e2e=step["e2e_live"],
                    cpu_share=step["worker_cpu_share"],
                    cpu_per_million=step["worker_cpu_s_per_million"],
                )
        text = summarize(stacks, rate_hz, context)
        out = Path(args.out)
        (out / "profile-top.md").write_text(text, encoding="utf-8")
        (out / "profile-stacks.txt.gz").write_bytes(gzip.compress(stacks.read_bytes()))
        print(text)
        log(f"wrote {out / 'profile-top.md'} and {out / 'profile-stacks.txt.gz'}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(args: argparse.Namespace) -> int:
    if not PY_SPY.exists():
        log(f"py-spy is not installed in the venv ({PY_SPY}): pip install py-spy")
        return 2
    return asyncio.run(profile_run(args))


__all__ = ["BENCH_DIR", "main", "summarize"]
