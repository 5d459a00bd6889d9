"""The cost table's split of measured CPU over function families."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.cost_table import (
    KERNEL_ROW,
    command_env,
    cost_rows,
    family_of,
    library_of,
    perf_samples_by_library,
    samples_by_thread,
    thread_of,
    waiting,
)

MAIN = "<module> (faust:8);execute_from_commandline (mode/worker.py:264)"
CONSUMER = (
    "_bootstrap (threading.py:995);Thread._bootstrap (threading.py:1);run (mode/threads.py:1)"
)


def test_the_leafmost_known_frame_names_the_family() -> None:
    frames = [*MAIN.split(";"), "post (web/views.py:200)", "process_batch (agents/validate.py:9)"]
    assert family_of(frames) == "validate core"
    assert family_of([*MAIN.split(";"), "post (web/views.py:200)"]) == "edge handler"
    assert family_of(["0x7f (libc.so.6)"]) == "other (native, interpreter)"


def test_parked_stacks_are_set_aside() -> None:
    gil = [*MAIN.split(";"), "take_gil (ceval_gil.c:1)", "0x7f (libc.so.6)"]
    lock = [*CONSUMER.split(";"), "lock_PyThread_acquire_lock (x)", "0x7f (libc.so.6)"]
    assert waiting(gil) == "gil"
    assert waiting(lock) == "wait"
    assert waiting([*MAIN.split(";"), "post (web/views.py:200)"]) is None
    assert thread_of([*CONSUMER.split(";"), "ConsumerThread.run (x)"]) == "consumer"


def test_the_table_adds_up_to_the_measured_cpu() -> None:
    lines = [
        f"{MAIN};post (web/views.py:200) 30",
        f"{MAIN};process_batch (agents/validate.py:9) 10",
        f"{MAIN};take_gil (ceval_gil.c:1) 50",
        f"{CONSUMER};ConsumerThread.run (x);fetch (aiokafka/consumer/fetcher.py:1) 5",
    ]
    by_thread, parked = samples_by_thread(lines)
    assert parked == Counter({"main: gil": 50})
    kernel = {"main": 4.0, "python threads": 1.0, "chDB native threads": 2.0}
    rows = dict(cost_rows(by_thread, kernel, broker_s=3.0, events=1_000_000))
    assert rows["edge handler"] == pytest.approx(3.0)
    assert rows["validate core"] == pytest.approx(1.0)
    assert rows["Kafka fetch (consumer)"] == pytest.approx(1.0)
    assert rows["chDB native threads (inserts, merges)"] == pytest.approx(2.0)
    assert rows["Kafka broker (JVM)"] == pytest.approx(3.0)
    assert sum(v for k, v in rows.items() if k != "Kafka broker (JVM)") == pytest.approx(7.0)


def test_samples_in_a_system_call_are_the_kernel_s() -> None:
    write = [*MAIN.split(";"), "UVStream__try_write (loop.c:1)", "write (libc.so.6)"]
    unsymbolized = [*MAIN.split(";"), "post (web/views.py:200)", "0x7f (libc.so.6)"]
    by_thread, _ = samples_by_thread([f"{';'.join(write)} 4", f"{';'.join(unsymbolized)} 6"])
    assert by_thread["main"] == Counter({KERNEL_ROW: 4, "edge handler": 6})


def test_the_kernel_s_system_time_replaces_the_samples_in_system_calls() -> None:
    lines = [
        f"{MAIN};post (web/views.py:200) 30",
        f"{MAIN};process_batch (agents/validate.py:9) 10",
        f"{MAIN};UVStream__try_write (loop.c:1);write (libc.so.6) 60",
    ]
    by_thread, _ = samples_by_thread(lines)
    kernel = {"main": 5.0, "chDB native threads": 2.0}
    rows = dict(cost_rows(by_thread, kernel, 3.0, 1_000_000, main_system_s=1.0))
    # 60 % of the samples were in write(), but the kernel counted 1 s of the main thread's 5.
    assert rows[KERNEL_ROW] == pytest.approx(1.0)
    assert rows["edge handler"] == pytest.approx(3.0)
    assert rows["validate core"] == pytest.approx(1.0)
    assert sum(v for k, v in rows.items() if k != "Kafka broker (JVM)") == pytest.approx(7.0)
    # Without the kernel's figure the samples split the whole thread, as before.
    unscaled = dict(cost_rows(by_thread, kernel, 3.0, 1_000_000))
    assert unscaled[KERNEL_ROW] == pytest.approx(3.0)


def test_perf_samples_are_grouped_by_library() -> None:
    lines = [
        " 7470      7efc8826f319 (/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0)",
        " 7470      ffffffff8e0 ([kernel.kallsyms])",
        " 7470      7efc8826f3 (/usr/lib/x86_64-linux-gnu/libc.so.6)",
        " 7470      7efc8826f3 (/v/lib/python3.11/site-packages/orjson/orjson.cpython-311.so)",
        " 7471      7efc8826f319 (/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0)",
        " 7470      7efc8826f3 (/usr/bin/python3.11)",
    ]
    assert perf_samples_by_library(lines, 7470) == Counter(
        {
            "Python interpreter and its C modules": 2,
            "kernel": 1,
            "C library (malloc, memcpy)": 1,
            "orjson": 1,
        }
    )
    assert library_of("/x/site-packages/uvloop/loop.cpython-311-x86_64-linux-gnu.so") == "uvloop"
    assert library_of("/x/unknown.so") == "other libraries"


def test_a_tables_command_line_names_the_workers_variables() -> None:
    assert command_env({"rate": 3600}) == ""
    env = {"TRACKFLOW_SINK_ENABLED": "false"}
    assert command_env({"worker_env": env}) == " --worker-env TRACKFLOW_SINK_ENABLED=false"
