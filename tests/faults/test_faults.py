"""Nothing lost, nothing doubled: the real stack under faults.

Short variant by default (runs in `make test`); `make test-faults` runs the full one
(TRACKFLOW_FAULTS_FULL=1: 100,000 events per scenario, more faults) and writes the figures to
tests/faults/results.md.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from harness.stack import ROOT, Broker, Worker, start_broker
from tests.faults.harness import (
    Batch,
    LoadStats,
    count_stores,
    make_batches,
    markdown_table,
    merge_results,
    run_load,
    wait_drained,
)
from tests.support import events as ev
from tests.support.kafka import read_topic

FULL = os.environ.get("TRACKFLOW_FAULTS_FULL") == "1"
EVENTS = 100_000 if FULL else 6_000
BATCH = 20
RATE = 150.0 if FULL else 60.0  # batches per second offered by the clients
CLIENTS = 16
RESULTS: list[dict[str, Any]] = []

FAULT_SETTINGS = {
    "TRACKFLOW_RATE_LIMIT_PER_IP": "",
    "TRACKFLOW_RATE_LIMIT_PER_TENANT": "",
    "TRACKFLOW_RETRY_AFTER_S": "1",
    "TRACKFLOW_PRODUCE_TIMEOUT_S": "3",
    "TRACKFLOW_SINK_RETRY_MAX_S": "3",
    "TRACKFLOW_SINK_SHUTDOWN_FLUSH_S": "3",
}


@pytest.fixture(scope="module")
def fault_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    yield from start_broker(tmp_path_factory.mktemp("fault-broker"))


def new_worker(broker: Broker, workdir: Path, **overrides: str) -> Worker:
    return Worker(broker=broker, workdir=workdir, overrides={**FAULT_SETTINGS, **overrides})


class Load:
    """The clients, running in a thread while the test injects faults."""

    def __init__(self, urls: Callable[[], Sequence[str]], tenant: str, total: int = EVENTS):
        self.stats = LoadStats()
        self.batches = make_batches(tenant, total, BATCH)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(urls,), daemon=True)

    def _run(self, urls: Callable[[], Sequence[str]]) -> None:
        try:
            asyncio.run(run_load(urls, self.batches, CLIENTS, RATE, self.stats))
        except BaseException as exc:
            self.error = exc

    @property
    def duration(self) -> float:
        return len(self.batches) / RATE

    def start(self) -> Load:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(timeout=900)
        if self.error is not None:
            raise self.error


def probe(workers: Sequence[Worker], stats: LoadStats, timeout: float = 120.0) -> float:
    """Post one event (retrying like a client) and wait until it is queryable; seconds taken."""
    started = time.monotonic()
    sid = f"probe-{uuid.uuid4().hex[:10]}"
    event = ev.page_view(workers[0].api_key, sid)
    stats.sent_ids.add(event["eventId"])
    body = orjson.dumps({"events": [event]})
    accepted = False
    while time.monotonic() - started < timeout:
        for worker in workers:
            try:
                if not accepted:
                    accepted = worker.post(body).status_code == 202
                    if accepted:
                        stats.accepted_ids.add(event["eventId"])
                        stats.accepted_events += 1
                if accepted and worker.session_events(sid):
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"probe event not visible after {timeout}s")


def finish(
    name: str,
    load: Load,
    workers: Sequence[Worker],
    recover_s: float,
    dead_lettered: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Counts and checks; ``dead_lettered`` are accepted ids that must not be stored."""
    load.join()
    live = [w for w in workers if w.proc is not None and w.proc.poll() is None]
    drain_s = wait_drained(live[0])
    for worker in live:
        assert worker.stop() == 0, worker.log_tail()
    counts = count_stores(workers, load.stats.accepted_ids - dead_lettered, load.stats.sent_ids)
    row = {
        "scenario": name,
        "accepted_events": load.stats.accepted_events,
        "unique_accepted": len(load.stats.accepted_ids),
        "unique_stored": counts.unique,
        # Stored although the client never saw a 202 (it was told 503 or timed out); not a loss.
        "stored_not_acked": counts.unique
        - (len(load.stats.accepted_ids - dead_lettered) - counts.missing),
        "physical_rows": counts.rows,
        "visible_duplicates": counts.visible_duplicates,
        "cross_store_repeats": counts.cross_store_repeats,
        "lost": counts.missing,
        "client_retries": load.stats.retries,
        "recover_s": round(recover_s, 1),
        "drain_s": round(drain_s, 1),
    }
    RESULTS.append(row)
    print(orjson.dumps(row).decode())
    if counts.missing:
        stored = set()
        for worker in workers:
            rows = worker.query_store("SELECT toString(event_id) AS id FROM events")
            stored |= {r["id"] for r in rows}
        missing = sorted(load.stats.accepted_ids - stored)
        (workers[0].workdir / "missing-ids.json").write_bytes(orjson.dumps(missing))
    assert counts.missing == 0, row
    assert counts.visible_duplicates == 0, row
    assert counts.unsent == 0, row
    assert counts.unique >= len(load.stats.accepted_ids - dead_lettered), row
    return row


def test_worker_killed_and_restarted(fault_broker: Broker, tmp_path: Path) -> None:
    worker = new_worker(fault_broker, tmp_path).start()
    load = Load(lambda: [worker.base_url], worker.api_key).start()
    kills = 4 if FULL else 2
    recoveries = []
    for _ in range(kills):
        time.sleep(load.duration / (kills + 1))
        worker.kill()
        time.sleep(1.0)
        started = time.monotonic()
        worker.start()
        recoveries.append(time.monotonic() - started + probe([worker], load.stats))
    finish(f"SIGKILL worker x{kills}, restart", load, [worker], max(recoveries))


def test_clickhouse_inserts_fail_for_a_while(fault_broker: Broker, tmp_path: Path) -> None:
    flag = tmp_path / "refuse-inserts"
    worker = new_worker(fault_broker, tmp_path, TRACKFLOW_SINK_FAIL_FLAG=str(flag)).start()
    load = Load(lambda: [worker.base_url], worker.api_key).start()
    outage = 30.0 if FULL else 10.0
    time.sleep(min(load.duration / 4, 5))
    flag.touch()
    time.sleep(outage)
    assert worker.metric("trackflow_insert_failures_total") > 0
    assert worker.metric("trackflow_sink_buffered_rows") > 0
    flag.unlink()
    finish(f"ClickHouse inserts refused {outage:.0f}s", load, [worker], probe([worker], load.stats))


def test_broker_stopped_and_restarted(tmp_path: Path) -> None:
    # A broker of its own: stopping the module's broker would disturb nothing else, but the
    # restart must come back on the same port and data.
    for broker in start_broker(tmp_path / "own-broker"):
        worker = new_worker(broker, tmp_path).start()
        urls = [worker.base_url]
        load = Load(lambda urls=urls: urls, worker.api_key).start()  # type: ignore[misc]
        time.sleep(min(load.duration / 3, 8))
        broker.stop()
        time.sleep(10.0)
        attempt = ev.click(worker.api_key, "down")
        load.stats.sent_ids.add(attempt["eventId"])
        refused = httpx.post(
            f"{worker.base_url}/v1/batch", content=orjson.dumps({"events": [attempt]}), timeout=30
        )
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"] == "kafka_unavailable"
        started = time.monotonic()
        broker.start()
        recover = time.monotonic() - started + probe([worker], load.stats)
        finish("Kafka broker stopped 10s, restarted", load, [worker], recover)


def test_two_workers_one_killed(fault_broker: Broker, tmp_path: Path) -> None:
    topics = uuid.uuid4().hex[:8]
    a = new_worker(fault_broker, tmp_path, _topics=topics).start()
    b = new_worker(fault_broker, tmp_path, _topics=topics).start()
    alive = [a, b]
    load = Load(lambda: [w.base_url for w in alive], a.api_key).start()
    time.sleep(load.duration / 3)
    a.kill()
    alive.remove(a)
    recover = probe([b], load.stats)
    finish("2 workers, one SIGKILLed (union of stores)", load, [a, b], recover)


def test_sigterm_with_buffer_and_while_inserts_fail(fault_broker: Broker, tmp_path: Path) -> None:
    flag = tmp_path / "refuse-inserts"
    worker = new_worker(
        fault_broker, tmp_path, TRACKFLOW_SINK_FAIL_FLAG=str(flag), TRACKFLOW_SINK_WINDOW_S="3"
    ).start()
    load = Load(lambda: [worker.base_url], worker.api_key).start()
    time.sleep(load.duration / 4)
    # 1) SIGTERM while the sink holds a buffer: it must store it before exiting.
    assert worker.stop() == 0
    worker.start()
    time.sleep(load.duration / 4)
    # 2) SIGTERM while inserts fail: the buffer cannot be stored, so it must stay uncommitted.
    flag.touch()
    deadline = time.monotonic() + 30
    while worker.metric("trackflow_sink_buffered_rows") == 0:
        assert time.monotonic() < deadline, "the sink never buffered while inserts failed"
        time.sleep(0.2)
    assert worker.stop() == 0
    flag.unlink()
    started = time.monotonic()
    worker.start()
    recover = time.monotonic() - started + probe([worker], load.stats)
    finish("SIGTERM with a buffer, and while inserts fail", load, [worker], recover)


def test_worker_joins_and_leaves_under_load(fault_broker: Broker, tmp_path: Path) -> None:
    """Two rebalances under load: a second worker joins, later stops. Each sink stores and
    commits what it buffered for partitions it gives up, so the next owner does not store the
    same rows again (re-stored rows show as physical rows beyond unique ids over the stores)."""
    topics = uuid.uuid4().hex[:8]
    window = {"TRACKFLOW_SINK_WINDOW_S": "2"}  # a large buffer at each rebalance
    a = new_worker(fault_broker, tmp_path, _topics=topics, **window).start()
    b = new_worker(fault_broker, tmp_path, _topics=topics, **window)
    alive = [a]
    # Long enough for the second worker to start, share the load and stop while it runs.
    total = max(EVENTS, int(40 * RATE * BATCH))
    load = Load(lambda: [w.base_url for w in alive], a.api_key, total=total).start()
    time.sleep(3)
    b.start()
    alive.append(b)
    time.sleep(8)
    alive.remove(b)
    assert b.stop() == 0
    b_rows = b.query_store("SELECT count() AS n FROM events")[0]["n"]
    assert b_rows > 0, "the second worker's sink never stored a share"
    recover = probe([a], load.stats)
    row = finish("2nd worker joins, later stops (2 rebalances)", load, [a, b], recover)
    # Without the flush on revoke, 2,084 of 54,001 rows (3.9 %) were stored twice here.
    assert row["physical_rows"] - row["unique_stored"] <= row["accepted_events"] // 200, row


def poisoned_batches(
    tenants: Sequence[str], total: int
) -> tuple[list[list[dict[str, Any]]], set[str], set[str]]:
    """Valid batches of several tenants, every 10th carrying one event of a kind that once
    stopped storage for everyone: a client clock near 1970 (now stored, with its client time),
    a timestamp beyond 64 bits and 300 nested property keys (both dead-lettered).
    Returns the batches, the ids of the 1970-clock events and the ids that must be
    dead-lettered."""
    per_tenant = [make_batches(t, total // len(tenants), BATCH) for t in tenants]
    batches: list[list[dict[str, Any]]] = []
    early: set[str] = set()
    dead: set[str] = set()
    for n, batch in enumerate(b for group in zip(*per_tenant, strict=False) for b in group):
        mixed = Batch(batch)
        if n % 10 == 0:
            tenant, session = batch[0]["tenantId"], batch[0]["sessionId"]
            kind = (n // 10) % 3
            if kind == 0:  # the whole device's clock reset: events and sentAt near 1970
                mixed = Batch(ev.page_view(tenant, session, ts=5000 + i) for i in range(3))
                mixed.sent_at = 5000
                early.update(e["eventId"] for e in mixed)
            elif kind == 1:
                poison = ev.click(tenant, session)
                poison["timestamp"] = 2e19
                mixed.append(poison)
                dead.add(poison["eventId"])
            else:
                poison = ev.click(tenant, session)
                poison["properties"]["experiments"] = {f"x{n}_{i}": i for i in range(300)}
                mixed.append(poison)
                dead.add(poison["eventId"])
        batches.append(mixed)
    return batches, early, dead


def test_poison_events_across_tenants(fault_broker: Broker, tmp_path: Path) -> None:
    worker = new_worker(fault_broker, tmp_path, TRACKFLOW_READY_STALL_S="10").start()
    load = Load(lambda: [worker.base_url], worker.api_key)
    load.batches, early, dead = poisoned_batches([worker.api_key, "other-key"], EVENTS)
    load.start()
    freshness: list[float] = []
    not_ready = 0
    started = time.monotonic()
    while time.monotonic() - started < load.duration:
        freshness.append(probe([worker], load.stats, timeout=60))
        not_ready += 0 if worker.ready() else 1
        time.sleep(2.0)
    load.join()
    letters = read_topic(
        worker.broker.bootstrap, worker.env["TRACKFLOW_DEAD_LETTER_TOPIC"], len(dead), 60
    )
    reasons = {letter["event"]["eventId"]: letter["reason"] for letter in letters}
    assert set(reasons) == dead
    assert set(reasons.values()) == {"client_timestamp_out_of_range", "too_many_property_keys"}
    finish(
        f"poison events ({len(dead)} dead-lettered, {len(early)} with 1970 clocks stored)",
        load,
        [worker],
        max(freshness),
        dead_lettered=frozenset(dead),
    )
    stored = {r["id"] for r in worker.query_store("SELECT toString(event_id) AS id FROM events")}
    assert early <= stored
    assert not dead & stored
    assert max(freshness) < 15, freshness  # storage never stalled behind a poison event
    assert not_ready == 0


def test_write_results() -> None:
    """Record the figures of this run (full runs update tests/faults/results.md)."""
    assert RESULTS, "no fault scenario ran"
    print("\n" + markdown_table(RESULTS))
    if FULL:
        merge_results(
            ROOT / "tests/faults/results.md",
            f"Fault suite, full run ({EVENTS} events per scenario, `make test-faults`, "
            f"updated {time.strftime('%Y-%m-%d')})",
            RESULTS,
        )
