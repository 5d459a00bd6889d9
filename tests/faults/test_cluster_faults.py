"""Nothing lost, nothing doubled, ingest goes on: a 3-node Kafka cluster losing a node under load.

The topics are replicated three times with min.insync.replicas=2 and every producer uses
acks=all with idempotence, so a 202 means two brokers hold the batch; one broker may go at any
time. Each scenario measures, while a broker is gone, the share of requests answered 503 and
the longest time without any 202.

Same sizes as tests/faults/test_faults.py (6,000 events per scenario; TRACKFLOW_FAULTS_FULL=1:
100,000, and the figures go to tests/faults/results-cluster.md). The load is spread over a fixed
time per scenario, so that it lasts as long as the faults.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from harness.stack import ROOT, Cluster, Worker, start_cluster
from tests.faults.harness import (
    LoadStats,
    count_stores,
    make_batches,
    markdown_table,
    merge_results,
    run_load,
    wait_drained,
)
from tests.faults.test_faults import FAULT_SETTINGS, probe

FULL = os.environ.get("TRACKFLOW_FAULTS_FULL") == "1"
EVENTS = 100_000 if FULL else 6_000
BATCH = 20
CLIENTS = 16
DOWN_S = 20.0  # how long the killed broker stays down
RESULTS: list[dict[str, Any]] = []
CLUSTER_SETTINGS = {**FAULT_SETTINGS, "TRACKFLOW_REPLICATION_FACTOR": "3"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from start_cluster(tmp_path_factory.mktemp("fault-cluster"), nodes=3)


STARTED: list[Worker] = []


@pytest.fixture(autouse=True)
def no_stray_workers() -> Iterator[None]:
    """A failed scenario leaves no worker running (it would keep retrying a gone cluster)."""
    yield
    while STARTED:
        worker = STARTED.pop()
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()


@dataclass
class TimedStats(LoadStats):
    """LoadStats that also keep when each answer (or connection error) came."""

    timeline: list[tuple[float, str]] = field(default_factory=list)

    def note(self, outcome: str) -> None:
        super().note(outcome)
        self.timeline.append((time.monotonic(), outcome))


@dataclass(frozen=True)
class DownFigures:
    answers: int  # answers and connection errors while a broker was gone
    share_503: float
    longest_without_202_s: float


def while_down(
    timeline: Sequence[tuple[float, str]], windows: Sequence[tuple[float, float]]
) -> DownFigures:
    """503 share and the longest stretch without a 202 inside the windows a broker was gone
    (a window's start and end count as edges of a stretch)."""
    answers = refused = 0
    longest = 0.0
    for start, end in windows:
        inside = [(t, o) for t, o in timeline if start <= t <= end]
        answers += len(inside)
        refused += sum(1 for _, o in inside if o == "503")
        edges = [start, *(t for t, o in inside if o == "202"), end]
        longest = max(longest, *(b - a for a, b in itertools.pairwise(edges)))
    return DownFigures(answers, refused / answers if answers else 0.0, longest)


def test_while_down_counts_only_inside_the_windows() -> None:
    timeline = [(0.5, "202"), (1.0, "503"), (2.0, "202"), (3.0, "503"), (7.0, "202"), (9.0, "503")]
    figures = while_down(timeline, [(1.0, 8.0)])
    assert figures.answers == 4  # 1.0 .. 7.0
    assert figures.share_503 == 0.5
    assert figures.longest_without_202_s == 5.0  # 2.0 -> 7.0
    assert while_down([], [(0.0, 4.0)]) == DownFigures(0, 0.0, 4.0)  # no answer at all: a stall


class Load:
    """The harness' clients in a thread: batches released at a steady rate until the faults
    are over and at least ``EVENTS`` events were released.

    The rate spreads ``EVENTS`` over ``seconds``, the time the faults usually take; on a slow
    machine the load goes on (with more events) until ``faults_over`` is called, so every fault
    happens under load.
    """

    def __init__(self, urls: Callable[[], Sequence[str]], tenant: str, seconds: float) -> None:
        self.stats = TimedStats()
        self.tenant = tenant
        self.rate = EVENTS / BATCH / seconds
        self.released = 0
        self.error: BaseException | None = None
        self._over = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(urls,), daemon=True)

    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            for batch in make_batches(self.tenant, 1_000, BATCH):
                if self.released >= EVENTS and self._over.is_set():
                    return
                self.released += len(batch)
                yield batch

    def _run(self, urls: Callable[[], Sequence[str]]) -> None:
        try:
            batches = cast(list[list[dict[str, Any]]], self._batches())  # run_load iterates once
            asyncio.run(run_load(urls, batches, CLIENTS, self.rate, self.stats))
        except BaseException as exc:
            self.error = exc

    def faults_over(self) -> None:
        self._over.set()

    def start(self) -> Load:
        self._thread.start()
        return self

    def join(self) -> None:
        self.faults_over()
        self._thread.join(timeout=900)
        if self.error is not None:
            raise self.error


def say(what: str) -> None:
    """A progress line (pytest -s shows them): when each fault step happened."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def new_worker(cluster: Cluster, workdir: Path, **overrides: str) -> Worker:
    worker = Worker(broker=cluster, workdir=workdir, overrides={**CLUSTER_SETTINGS, **overrides})
    STARTED.append(worker)
    return worker


def data_topics(worker: Worker) -> list[str]:
    env = worker.env
    return [env["TRACKFLOW_RAW_TOPIC"], env["TRACKFLOW_PROCESSED_TOPIC"]]


def all_topics(worker: Worker) -> list[str]:
    env = worker.env
    return [*data_topics(worker), env["TRACKFLOW_DEAD_LETTER_TOPIC"], "__consumer_offsets"]


def busiest_leader(cluster: Cluster, worker: Worker) -> int:
    """The node that leads most raw and processed partitions."""
    [(node, _)] = cluster.leaders(data_topics(worker)).most_common(1)
    return node


def finish(
    name: str,
    load: Load,
    workers: Sequence[Worker],
    windows: Sequence[tuple[float, float]],
    recover_s: float,
) -> None:
    assert windows
    load.join()
    say("load done")
    down = while_down(load.stats.timeline, windows)
    live = [w for w in workers if w.proc is not None and w.proc.poll() is None]
    drain_s = wait_drained(live[0])
    say("drained")
    for worker in live:
        assert worker.stop() == 0, worker.log_tail()
    say("workers stopped")
    counts = count_stores(workers, load.stats.accepted_ids, load.stats.sent_ids)
    say("stores counted")
    row = {
        "scenario": name,
        "accepted_events": load.stats.accepted_events,
        "unique_accepted": len(load.stats.accepted_ids),
        "unique_stored": counts.unique,
        "stored_not_acked": counts.unique - (len(load.stats.accepted_ids) - counts.missing),
        "physical_rows": counts.rows,
        "visible_duplicates": counts.visible_duplicates,
        "cross_store_repeats": counts.cross_store_repeats,
        "lost": counts.missing,
        "client_retries": load.stats.retries,
        "recover_s": round(recover_s, 1),
        "drain_s": round(drain_s, 1),
        "broker_down_s": round(sum(end - start for start, end in windows), 1),
        "answers_while_down": down.answers,
        "share_503_while_down": round(down.share_503, 3),
        "longest_without_202_s": round(down.longest_without_202_s, 1),
    }
    RESULTS.append(row)
    print(orjson.dumps(row).decode())
    assert counts.missing == 0, row
    assert counts.visible_duplicates == 0, row
    assert counts.unsent == 0, row
    assert counts.unique >= len(load.stats.accepted_ids), row
    # Two of three brokers hold every partition: ingest goes on while one is gone.
    assert down.answers > 0, row
    assert down.share_503 < 0.5, row
    assert down.longest_without_202_s < 15.0, row


def test_the_cluster_script_names_and_checks_the_cluster(cluster: Cluster) -> None:
    """README "Local Kafka": `cluster url` is what TRACKFLOW_BROKER_URL takes, `cluster status`
    answers 0 while every node runs, and each node logs its garbage collector's pauses."""
    script = str(ROOT / "deploy/kafka.sh")
    url = subprocess.run(
        [script, "cluster", "url"], env=cluster.env, capture_output=True, text=True, check=True
    )
    assert url.stdout.strip() == cluster.url
    assert subprocess.run([script, "cluster", "status"], env=cluster.env).returncode == 0
    folder = Path(cluster.env["TRACKFLOW_KAFKA_DIR"])
    for node in range(1, cluster.nodes + 1):
        assert (folder / f"node-{node}" / "logs" / "kafkaServer-gc.log").stat().st_size > 0


def test_busiest_leader_killed_and_restarted(cluster: Cluster, tmp_path: Path) -> None:
    say("start the worker")
    worker = new_worker(cluster, tmp_path).start()
    cluster.wait_in_sync(all_topics(worker))
    load = Load(lambda: [worker.base_url], worker.api_key, seconds=DOWN_S + 16).start()
    say(f"load started: {load.rate:.1f} batches/s")
    time.sleep(4.0)
    victim = busiest_leader(cluster, worker)
    say(f"SIGKILL broker {victim}")
    killed = time.monotonic()
    cluster.node(victim, "kill")
    time.sleep(DOWN_S)
    say(f"start broker {victim}")
    cluster.node(victim, "start")
    say(f"broker {victim} ready")
    windows = [(killed, time.monotonic())]
    load.faults_over()
    started = time.monotonic()
    cluster.wait_in_sync(all_topics(worker))
    say("every replica in sync")
    recover = time.monotonic() - started + probe([worker], load.stats)
    say("a new event is stored")
    # The edge's producer (raw) and the validate stage's (processed) wrote every batch with a
    # producer id: idempotent, so a produce retried across the leader change is not doubled.
    for topic in data_topics(worker):
        ids = cluster.producer_ids(topic)
        assert ids and -1 not in ids, (topic, sorted(set(ids)))
    finish(
        f"3 brokers: SIGKILL the busiest leader, restart after {DOWN_S:.0f}s",
        load,
        [worker],
        windows,
        recover,
    )


def test_rolling_restart_of_every_broker(cluster: Cluster, tmp_path: Path) -> None:
    worker = new_worker(cluster, tmp_path).start()
    cluster.wait_in_sync(all_topics(worker))
    load = Load(lambda: [worker.base_url], worker.api_key, seconds=60).start()
    time.sleep(3.0)
    windows = []
    for node in range(1, cluster.nodes + 1):
        say(f"stop broker {node}")
        stopped = time.monotonic()
        cluster.node(node, "stop")
        cluster.node(node, "start")
        windows.append((stopped, time.monotonic()))
        say(f"broker {node} ready")
        cluster.wait_in_sync(all_topics(worker))  # the next one only once this one caught up
        say("every replica in sync")
    load.faults_over()
    recover = probe([worker], load.stats)
    finish("3 brokers: rolling restart, one at a time", load, [worker], windows, recover)


def test_worker_killed_while_a_broker_is_down(cluster: Cluster, tmp_path: Path) -> None:
    # The shortest group session: the killed worker's partitions move to b sooner.
    group = {"_topics": uuid.uuid4().hex[:8], "TRACKFLOW_SESSION_TIMEOUT_S": "6"}
    a = new_worker(cluster, tmp_path, **group).start()
    b = new_worker(cluster, tmp_path, **group).start()
    cluster.wait_in_sync(all_topics(a))
    alive = [a, b]
    load = Load(lambda: [w.base_url for w in alive], a.api_key, seconds=DOWN_S + 16).start()
    time.sleep(4.0)
    victim = busiest_leader(cluster, a)
    say(f"SIGKILL broker {victim}")
    killed = time.monotonic()
    cluster.node(victim, "kill")
    time.sleep(3.0)
    say("SIGKILL worker a")
    a.kill()
    alive.remove(a)
    recover = probe([b], load.stats)  # from the worker's kill until b stored a new event
    say(f"worker b stored a new event after {recover:.1f}s")
    time.sleep(max(0.0, killed + DOWN_S - time.monotonic()))
    say(f"start broker {victim}")
    cluster.node(victim, "start")
    say(f"broker {victim} ready")
    windows = [(killed, time.monotonic())]
    load.faults_over()
    cluster.wait_in_sync(all_topics(b))
    finish(
        "3 brokers: one down, then a worker SIGKILLed (union of stores)",
        load,
        [a, b],
        windows,
        recover,
    )


def test_write_cluster_results() -> None:
    """Record the figures of this run (full runs write tests/faults/results-cluster.md)."""
    assert RESULTS, "no cluster fault scenario ran"
    print("\n" + markdown_table(RESULTS))
    if FULL:
        merge_results(
            ROOT / "tests/faults/results-cluster.md",
            f"Cluster fault suite, full run ({EVENTS} events per scenario, 3 local brokers, "
            f"replication factor 3, min.insync.replicas 2, `make test-faults`, "
            f"updated {time.strftime('%Y-%m-%d')})",
            RESULTS,
        )
