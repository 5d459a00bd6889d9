"""CPU-µs per event by function family, adding up to what the kernel measured.

    .venv/bin/python -m bench.cost_table --rate 3600 --seconds 30 [--out bench/profiles]
        [--worker-env K=V ...] [--perf-hz 499]

Starts a Kafka broker and one worker (sink and chDB store included) of its own and offers
``--rate`` events/s open loop with the benchmark's generator. Over one window it reads every
thread's CPU time from the kernel (worker and broker), and the main thread's system time; over
a second window at the same rate it samples the worker with ``py-spy record --native`` at a low
rate (each native sample pauses the worker) (on-CPU samples only: idle threads are not sampled,
and stacks parked in a wait or in GIL acquisition are set aside). The main thread's system time
is its kernel row, and its user time is split over function families in proportion to its
samples outside system calls (py-spy catches a thread in a system call far more often than the
time it spends there); the other Python threads' CPU is split by their samples; chDB's native
threads (which py-spy cannot see) and the broker come from the kernel's figures directly, so the
table adds up to the measured total. A third window, when ``perf`` is on PATH, samples the main
thread with ``perf record`` (no pauses) and splits it by library: the interpreter, the kernel,
the C library, orjson, uvloop and the other C extensions. Writes ``cost-table.md``, the
collapsed stacks and, when ``inferno-flamegraph`` is on PATH (``cargo install inferno``),
``worker-flame.svg`` into ``--out``. Not a test and no thresholds: a figure for bench/tuning.md.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from bench.report import table
from bench.rig import worker_overrides
from bench.thread_cpu import (
    broker_and_worker,
    cpu_by_thread_group,
    loadgen,
    process_cpu,
    system_seconds,
    thread_cpu,
)
from bench.workload import tenant_keys

PY_SPY = Path(sys.executable).parent / "py-spy"

# The first family whose marker appears in a stack, searched from the leaf up, names the stack.
# Markers are substrings of py-spy's "function (file:line)" frames.
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("garbage collector", ("gc_collect", "collect_generations", "gc_collect_main")),
    ("logging", ("logging/__init__.py", "trackflow_app/logs.py")),
    ("metrics", ("prometheus_client/", "trackflow_app/metrics.py", "web/phases.py")),
    (
        "validate core",
        (
            "agents/validate.py",
            "agents/sanitize.py",
            "agents/geo.py",
            "agents/bots.py",
            "schemas/",
            "pydantic",
            "crawlerdetect",
            "geoip2",
            "maxminddb",
            "ua_parser",
            "user_agents",
        ),
    ),
    ("validate shell (stream, fan-out)", ("agents/stream.py", "agents/fanout.py")),
    ("row mapping", ("agents/rows.py", "agents/buffer.py")),
    # The store thread: the client, and the engine's own code for an insert that runs on it.
    ("chDB insert on the store thread", ("clickhouse_connect/", "trackflow_app/store.py", "chdb")),
    ("sink consume and commit", ("agents/sink.py", "agents/sink_loop.py")),
    ("edge handler", ("web/views.py", "web/edge.py", "web/ratelimit.py")),
    (
        "Kafka produce (raw and processed)",
        ("aiokafka/producer/", "faust/transport/producer", "faust/transport/drivers/aiokafka.py:1"),
    ),
    (
        "Kafka fetch (consumer)",
        ("aiokafka/consumer/", "aiokafka/conn.py", "aiokafka/protocol", "aiokafka/record"),
    ),
    (
        "Faust consumer handoff",
        ("faust/transport/consumer.py", "mode/threads.py", "faust/transport/conductor.py"),
    ),
    ("HTTP server (aiohttp)", ("aiohttp/", "faust/web/drivers/aiohttp.py", "yarl/", "multidict")),
    ("Faust runtime (streams, agents, sensors)", ("faust/", "mode/")),
    (
        "event loop",
        ("uvloop", "asyncio/", "selectors.py", "uv_", "uv__", "(loop.c", "_asynciomodule.c"),
    ),
)
# Leaves of a thread that waits rather than computes (py-spy's idle detection misses some).
WAIT_MARKERS = (
    "PyCOND_WAIT",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "sem_wait",
    "sem_timedwait",
    "PyThread_acquire_lock",
    "_queue_SimpleQueue_get",
    "epoll_wait",
    "epoll_pwait",
    "Condition.wait",
    "Event.wait",
    "EpollSelector.select",
    "select (selectors",
)
GIL_MARKERS = ("take_gil", "PyEval_RestoreThread", "PyEval_AcquireThread")
# C library wrappers of system calls: a native stack ending in one is a thread in the kernel.
# py-spy stops the worker for each native sample, and a thread inside a system call is caught
# there far more often than the time it spends in it (bench/tuning.md, "The cost table's
# system calls"), so these samples are not used to split the thread's CPU; the kernel's own
# count of the thread's system time is.
SYSCALL_WRAPPERS = frozenset(
    {
        *("write", "writev", "read", "readv", "send", "sendto", "sendmsg", "recv", "recvfrom"),
        *("recvmsg", "getpid", "__getpid", "madvise", "mmap", "munmap", "mprotect", "syscall"),
        *("pread64", "pwrite64", "__libc_write", "__libc_read", "fcntl", "ioctl", "close"),
    }
)
KERNEL_ROW = "kernel (system calls, page faults, scheduling)"

# perf's samples of the main thread grouped by the library (DSO) their instruction is in.
LIBRARY_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kernel", ("[kernel",)),
    ("Python interpreter and its C modules", ("libpython", "/bin/python", "lib-dynload")),
    ("C library (malloc, memcpy)", ("libc.so", "libm.so", "ld-linux", "[vdso]", "libpthread")),
    ("orjson", ("orjson",)),
    ("uvloop", ("uvloop",)),
    ("aiokafka's C records (CRC, batches)", ("aiokafka",)),
    ("pydantic-core", ("pydantic_core",)),
    ("aiohttp's C parts (parser, multidict, yarl)", ("aiohttp", "multidict", "yarl", "propcache")),
    ("chDB", ("chdb",)),
)


def family_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for family, markers in FAMILIES:
            if any(marker in frame for marker in markers):
                return family
    return "other (native, interpreter)"


def thread_of(frames: list[str]) -> str:
    """Which Python thread a stack belongs to, by what runs at its root."""
    text = ";".join(frames[:12])
    if "Thread._bootstrap" in text and ("ConsumerThread" in text or "consumer.py" in text):
        return "consumer"
    if "Thread._bootstrap" in text:
        return "other Python threads"
    return "main"


def waiting(frames: list[str]) -> str | None:
    """'gil' or 'wait' for a stack parked rather than running, else None."""
    leaf = ";".join(frames[-4:])
    if any(marker in leaf for marker in GIL_MARKERS):
        return "gil"
    if any(marker in leaf for marker in WAIT_MARKERS):
        return "wait"
    return None


def in_system_call(frames: list[str]) -> bool:
    """Whether a native stack ends in a system call's C library wrapper."""
    name, _, where = frames[-1].partition(" (")
    return "libc" in where and name in SYSCALL_WRAPPERS


def library_of(dso: str) -> str:
    for group, markers in LIBRARY_GROUPS:
        if any(marker in dso for marker in markers):
            return group
    return "other libraries"


def perf_samples_by_library(lines: Iterable[str], tid: int) -> Counter[str]:
    """One thread's samples by library, from ``perf script -F tid,ip,dso -G`` lines
    ("  <tid>  <ip> (<dso>)")."""
    counts: Counter[str] = Counter()
    for line in lines:
        fields = line.split(None, 1)
        if len(fields) == 2 and fields[0] == str(tid):
            counts[library_of(fields[1].rpartition("(")[2].rstrip(") "))] += 1
    return counts


def parse_collapsed(lines: Iterable[str]) -> Iterable[tuple[list[str], int]]:
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = [
                f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))
            ]
            if frames:
                yield frames, int(count)


def samples_by_thread(lines: Iterable[str]) -> tuple[dict[str, Counter[str]], Counter[str]]:
    """Per thread kind, samples by family; and the samples set aside (GIL waits, waits)."""
    by_thread: dict[str, Counter[str]] = defaultdict(Counter)
    parked: Counter[str] = Counter()
    for frames, count in parse_collapsed(lines):
        thread = thread_of(frames)
        kind = waiting(frames)
        if kind is not None:
            parked[f"{thread}: {kind}"] += count
            continue
        family = KERNEL_ROW if in_system_call(frames) else family_of(frames)
        by_thread[thread][family] += count
    return by_thread, parked


def kernel_cpu_by_thread_kind(groups: dict[str, float]) -> dict[str, float]:
    """bench.thread_cpu's groups renamed to this module's thread kinds (chDB's kept apart)."""
    out: dict[str, float] = defaultdict(float)
    for name, seconds in groups.items():
        if name.startswith("event loop"):
            out["main"] += seconds
        elif name.startswith("other Python"):
            out["python threads"] += seconds
        else:
            out["chDB native threads"] += seconds
    return dict(out)


def cost_rows(
    by_thread: dict[str, Counter[str]],
    kernel: dict[str, float],
    broker_s: float,
    events: int,
    main_system_s: float | None = None,
) -> list[tuple[str, float]]:
    """(family, CPU-µs per event): each Python thread kind's kernel CPU split by its samples.

    The kernel counts Faust's consumer thread and the store's thread together ("python
    threads"), so their samples share that figure. With ``main_system_s`` (the main thread's
    system time, from the kernel) that time is the main thread's kernel row, and only its user
    time is split by the samples outside system calls."""
    cost: defaultdict[str, float] = defaultdict(float)
    main = Counter(by_thread.get("main", Counter()))
    if main_system_s is not None:
        main.pop(KERNEL_ROW, None)
        kernel = {**kernel, "main": kernel.get("main", 0.0) - main_system_s}
        cost[KERNEL_ROW] += main_system_s
    shares = {"main": main}
    others: Counter[str] = Counter()
    for thread in ("consumer", "other Python threads"):
        others.update(by_thread.get(thread, Counter()))
    shares["python threads"] = others
    for kind, samples in shares.items():
        total = sum(samples.values())
        for family, count in samples.items():
            cost[family] += kernel.get(kind, 0.0) * count / total if total else 0.0
        if not total:
            cost["other (native, interpreter)"] += kernel.get(kind, 0.0)
    cost["chDB native threads (inserts, merges)"] += kernel.get("chDB native threads", 0.0)
    ordered = sorted(cost.items(), key=lambda item: -item[1])
    rows = [(family, seconds / events * 1e6) for family, seconds in ordered]
    return [*rows, ("Kafka broker (JVM)", broker_s / events * 1e6)]


def command_env(result: dict[str, Any]) -> str:
    """The run's worker variables, as the command line that set them."""
    return "".join(f" --worker-env {k}={v}" for k, v in result.get("worker_env", {}).items())


def render(
    result: dict[str, Any],
    rows: list[tuple[str, float]],
    parked: Counter[str],
    main_samples: Counter[str],
) -> str:
    worker_total = sum(us for family, us in rows if family != "Kafka broker (JVM)")
    lines = [
        f"# CPU per event by family ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"`python -m bench.cost_table --rate {result['rate']:.0f} --seconds "
        f"{result['seconds']:.0f}{command_env(result)}`: {result['events']:,} events accepted at "
        f"{result['accepted_events_per_s']:,.0f} ev/s; POST p50 {result['p50']:.1f} ms, "
        f"p99 {result['p99']:.1f} ms (p99 {result['profiled_p99']:.0f} ms while profiled). "
        f"Worker {worker_total:.1f} CPU-µs per event, broker "
        f"{rows[-1][1]:.1f}. Python threads' kernel CPU split by py-spy --native samples "
        f"({result['samples']:,} on-CPU samples; set aside: "
        + ", ".join(f"{k} {v:,}" for k, v in parked.most_common())
        + ").",
        "",
        *system_time_note(result, main_samples),
        table(
            ["family", "CPU-µs per event", "share of worker"],
            [
                [
                    family,
                    f"{us:.1f}",
                    "" if family.startswith("Kafka broker") else f"{100 * us / worker_total:.0f} %",
                ]
                for family, us in rows
            ],
        ),
        "",
        *library_table(result),
    ]
    return "\n".join(lines)


def system_time_note(result: dict[str, Any], main_samples: Counter[str]) -> list[str]:
    """How far py-spy's share of the main thread in system calls is from the kernel's."""
    system_s, main_s = result.get("main_system_s"), result["kernel_cpu_s"].get("main", 0.0)
    total = sum(main_samples.values())
    if system_s is None or not main_s or not total:
        return []
    return [
        f"The main thread's system time, {100 * system_s / main_s:.0f} % of its CPU by the "
        f"kernel's count, is the kernel row; py-spy caught "
        f"{100 * main_samples[KERNEL_ROW] / total:.0f} % of its on-CPU samples in system "
        "calls, and those samples are left out of the split of its user time.",
        "",
    ]


def library_table(result: dict[str, Any]) -> list[str]:
    """The main thread's CPU by library, from perf's samples (no pauses, kernel included)."""
    samples: dict[str, int] = result.get("perf_main_by_library") or {}
    total = sum(samples.values())
    if not total:
        return []
    main_us = result["kernel_cpu_s"].get("main", 0.0) / result["events"] * 1e6
    ordered = sorted(samples.items(), key=lambda item: -item[1])
    return [
        f"The main thread by library: `perf record -F {result['perf_hz']}` over a third "
        f"window at the same rate ({total:,} samples), its {main_us:.1f} CPU-µs per event "
        "split by the library of each sampled instruction:",
        "",
        table(
            ["library", "CPU-µs per event", "share of the main thread"],
            [
                [group, f"{main_us * count / total:.1f}", f"{100 * count / total:.0f} %"]
                for group, count in ordered
            ],
        ),
        "",
    ]


def flame_graph(collapsed: Path, svg: Path) -> bool:
    tool = shutil.which("inferno-flamegraph")
    if tool is None:
        return False
    with collapsed.open("rb") as source, svg.open("wb") as sink:
        return subprocess.run([tool], stdin=source, stdout=sink, check=False).returncode == 0


def measure(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="trackflow-cost-table-"))
    stacks = work / "stacks.txt"
    env = dict(item.split("=", 1) for item in args.worker_env)
    overrides = worker_overrides(tenant_keys(40), tuple(env.items()))
    with broker_and_worker(work, overrides) as (_broker, worker, broker_pids):
        assert worker.proc is not None
        pid = worker.proc.pid
        url = f"{worker.base_url}/v1/batch"
        loadgen(url, args.rate / 2, args.warmup_seconds, seed=7)
        time.sleep(2)
        # The kernel's figures come from a window without the profiler (its pauses cost
        # the worker CPU and latency); the samples from a second window at the same rate.
        threads0, broker0 = thread_cpu(pid), process_cpu(broker_pids)
        system0 = system_seconds(pid, pid)
        result = loadgen(url, args.rate, args.seconds, seed=8)
        threads1, broker1 = thread_cpu(pid), process_cpu(broker_pids)
        system1 = system_seconds(pid, pid)
        time.sleep(2)
        spy = subprocess.Popen(
            [
                *(str(PY_SPY), "record", "--pid", str(pid), "--rate", str(args.sample_hz)),
                *(("--native",) if args.native else ("--nonblocking",)),
                *("--format", "raw", "--output", str(stacks)),
                *("--duration", str(int(args.seconds))),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)
        profiled = loadgen(url, args.rate, args.seconds - 2, seed=9)
        spy.wait(timeout=60)
        by_library = perf_window(pid, url, args, work) if args.perf_hz else Counter()
    summary = {
        "rate": args.rate,
        "seconds": args.seconds,
        "worker_env": env,
        "events": max(int(result["events_ok"]), 1),
        "accepted_events_per_s": result["accepted_events_per_s"],
        "p50": result["latency_ms"]["p50"],
        "p99": result["latency_ms"]["p99"],
        "profiled_p99": profiled["latency_ms"]["p99"],
        "kernel_cpu_s": kernel_cpu_by_thread_kind(cpu_by_thread_group(pid, threads0, threads1)),
        "broker_cpu_s": broker1 - broker0,
        "main_system_s": system1 - system0,
        "perf_hz": args.perf_hz,
        "perf_main_by_library": dict(by_library),
    }
    (out / "cost-inputs.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    (out / "worker-stacks.txt.gz").write_bytes(gzip.compress(stacks.read_bytes()))
    shutil.rmtree(work, ignore_errors=True)
    return write_table(out)


def perf_window(pid: int, url: str, args: argparse.Namespace, work: Path) -> Counter[str]:
    """perf's samples of the main thread by library, over a window at the same rate."""
    perf = shutil.which("perf")
    if perf is None:
        print("perf is not on PATH: no table by library", file=sys.stderr)
        return Counter()
    data = work / "perf.data"
    record = [perf, "record", "-q", "-F", str(args.perf_hz), "-p", str(pid), "-o", str(data)]
    recorder = subprocess.Popen(
        [*record, "--", "sleep", str(int(args.seconds) - 4)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)
    loadgen(url, args.rate, args.seconds - 2, seed=10)
    _, err = recorder.communicate(timeout=60)
    if recorder.returncode != 0 or not data.exists():
        print(f"perf record failed: {err.decode(errors='replace')[-400:]}", file=sys.stderr)
        return Counter()
    script = subprocess.run(
        [perf, "script", "-i", str(data), "-F", "tid,ip,dso", "-G"],
        capture_output=True,
        check=False,
    )
    return perf_samples_by_library(script.stdout.decode(errors="replace").splitlines(), pid)


def write_table(out: Path) -> int:
    """cost-table.md (and the flame graph) from a run's kernel figures and samples in ``out``."""
    summary = orjson.loads((out / "cost-inputs.json").read_bytes())
    stacks = gzip.decompress((out / "worker-stacks.txt.gz").read_bytes()).decode(errors="replace")
    by_thread, parked = samples_by_thread(stacks.splitlines())
    rows = cost_rows(
        by_thread,
        summary["kernel_cpu_s"],
        summary["broker_cpu_s"],
        summary["events"],
        summary.get("main_system_s"),
    )
    summary["samples"] = sum(sum(c.values()) for c in by_thread.values())
    text = render(summary, rows, parked, by_thread.get("main", Counter()))
    (out / "cost-table.md").write_text(text, encoding="utf-8")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as collapsed:
        collapsed.write(stacks)
        collapsed.flush()
        drawn = flame_graph(Path(collapsed.name), out / "worker-flame.svg")
    print(text)
    print(f"wrote {out}/cost-table.md" + (" and worker-flame.svg" if drawn else ""))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cost_table")
    parser.add_argument("--rate", type=float, default=3600.0, help="events/s, open loop")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-seconds", type=float, default=8.0)
    parser.add_argument("--out", default="bench/profiles")
    # py-spy pauses the worker for each native sample; at 200 Hz the worker fell far behind.
    parser.add_argument("--sample-hz", type=int, default=29)
    parser.add_argument(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="native frames (chDB, the interpreter, GC); --no-native samples without pausing",
    )
    parser.add_argument(
        "--perf-hz",
        type=int,
        default=499,
        help="perf's sampling rate for the main thread's split by library (0: no perf window)",
    )
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--from-out", action="store_true", help="only redraw the table from --out's last run"
    )
    args = parser.parse_args()
    sys.exit(write_table(Path(args.out)) if args.from_out else measure(args))


if __name__ == "__main__":
    main()
