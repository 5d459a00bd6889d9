"""The embedded engine starts with TrackFlow's options: its merges run at the configured nice
value and its allocator returns freed pages after the configured decay, and the worker does not
load pyarrow for it. chDB runs in a child process (one engine per process), with a real insert
and merge."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.chdb_child import run_chdb_script

SCRIPT = r"""
import glob, json, os, re, sys, threading, time
from trackflow_app.store import EventStore

os.environ.pop("JE_MALLOC_CONF", None)
store = EventStore(
    "chdb://" + sys.argv[1],
    "events",
    merge_nice=int(sys.argv[2]),
    dirty_decay_ms=int(sys.argv[3]),
    merges_at_once=int(sys.argv[4]),
    engine_options=json.loads(sys.argv[5]),
)
client = store._connect()
arrow_loaded = "pyarrow" in sys.modules
[[stats]] = client.query("SELECT stats FROM system.jemalloc_stats").result_rows
[decay] = re.findall(r"opt\.dirty_decay_ms: (\d+)", stats)
server = dict(client.query("SELECT name, value FROM system.server_settings").result_rows)
setting = server["os_threads_nice_value_merge_mutate"]
client.command("CREATE TABLE t (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
seen, stop = set(), threading.Event()

def watch_merge_threads():
    while not stop.is_set():
        for task in glob.glob(f"/proc/{os.getpid()}/task/*"):
            try:
                if open(task + "/comm").read().strip() == "MergeMutate":
                    seen.add(int(open(task + "/stat").read().rsplit(")", 1)[1].split()[16]))
            except OSError:
                pass
        time.sleep(0.002)

watcher = threading.Thread(target=watch_merge_threads)
watcher.start()
for i in range(40):
    rows = f"numbers({i * 200000}, 200000)"
    client.command(f"INSERT INTO t SELECT number, toString(number) FROM {rows}")
client.command("OPTIMIZE TABLE t FINAL")
stop.set()
watcher.join()
import pyarrow  # still importable by anything else in the process
print(json.dumps({
    "arrow_loaded": arrow_loaded, "arrow_version": pyarrow.__version__,
    "setting": str(setting), "merge_nice_values": sorted(seen), "decay": decay,
    "process_nice": os.nice(0),
    "merge_threads": server["background_pool_size"],
    "merges_per_thread": server["background_merges_mutations_concurrency_ratio"],
}))
"""


def engine_state(
    tmp_path: Path,
    merge_nice: int,
    decay_ms: int = 1000,
    merges_at_once: int = 0,
    engine_options: dict[str, str] | None = None,
) -> dict[str, object]:
    state: dict[str, object] = run_chdb_script(
        SCRIPT,
        str(tmp_path / f"store-{merge_nice}-{merges_at_once}"),
        str(merge_nice),
        str(decay_ms),
        str(merges_at_once),
        json.dumps(engine_options or {}),
    )
    return state


def test_merges_run_at_the_configured_nice_value(tmp_path: Path) -> None:
    state = engine_state(tmp_path, 10)
    assert state["setting"] == "10"
    assert state["decay"] == "1000"
    assert 10 in state["merge_nice_values"]  # type: ignore[operator]


def test_the_store_loads_without_pyarrow(tmp_path: Path) -> None:
    state = engine_state(tmp_path, 10)
    assert state["arrow_loaded"] is False  # the store inserted and merged without it
    assert state["arrow_version"]  # hidden only while chDB loaded


def test_zero_leaves_the_engine_default(tmp_path: Path) -> None:
    state = engine_state(tmp_path, 0, decay_ms=300)
    assert state["decay"] == "300"  # the allocator read TRACKFLOW_CHDB_DIRTY_DECAY_MS's value
    assert state["setting"] == "0"
    # Left alone, merge threads keep the process's own nice value (0 unless started under nice).
    assert state["merge_nice_values"] == [state["process_nice"]]
    # and the engine's own merge threads: two, each with up to two merges under way
    assert (state["merge_threads"], state["merges_per_thread"]) == ("2", "2")


def test_merges_at_once_is_one_merge_per_engine_thread(tmp_path: Path) -> None:
    state = engine_state(tmp_path, 10, merges_at_once=3)
    assert (state["merge_threads"], state["merges_per_thread"]) == ("3", "1")
    assert 10 in state["merge_nice_values"]  # type: ignore[operator]


def test_engine_options_go_over_trackflow_s_own(tmp_path: Path) -> None:
    options = {"background_merges_mutations_concurrency_ratio": "2"}
    state = engine_state(tmp_path, 10, merges_at_once=3, engine_options=options)
    assert (state["merge_threads"], state["merges_per_thread"]) == ("3", "2")
