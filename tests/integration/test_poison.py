"""No single event may stop the pipeline: what cannot be stored is dead-lettered, never retried
forever, and a stall shows in /readyz. Real broker, real worker, real chDB store."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from agents.validate import ValidationPolicy, process_batch
from harness.stack import Worker
from tests.support import events as ev
from tests.unit.factories import make_batch


def session() -> str:
    return f"session-{uuid.uuid4().hex[:12]}"


def letters(worker: Worker, reason: str, count: int, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    while time.monotonic() < deadline:
        found = worker.cli("dlq", "show", "--reason", reason)
        if len(found) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"expected {count} dead letters of {reason}, found {len(found)}")


def test_client_clock_near_1970_is_stored_with_its_client_time(worker: Worker) -> None:
    sid = session()
    early = ev.page_view(worker.api_key, sid, ts=5000)
    assert worker.post({"sentAt": 5000, "events": [early]}).status_code == 202
    later = ev.click(worker.api_key, sid)
    assert worker.post({"events": [later]}).status_code == 202
    stored = worker.wait_for_session(sid, 2)
    assert {e["event_id"] for e in stored} == {early["eventId"], later["eventId"]}
    worker.stop()
    [row] = worker.query_store(
        "SELECT toUnixTimestamp64Milli(client_timestamp) AS client_ms,"
        " toUnixTimestamp64Milli(timestamp) AS ms FROM events"
        f" WHERE event_id = '{early['eventId']}'"
    )
    assert row["client_ms"] == 5000
    assert abs(row["ms"] - ev.now_ms()) < 600_000  # skew-corrected to the server's clock


def test_timestamp_beyond_64_bits_is_dead_lettered_and_the_stage_goes_on(worker: Worker) -> None:
    sid = session()
    huge = ev.page_view(worker.api_key, sid, ts=0)
    huge["timestamp"] = 2e19
    assert worker.post({"sentAt": 2e19, "events": [huge]}).status_code == 202
    after = ev.click(worker.api_key, sid)
    assert worker.post({"events": [after]}).status_code == 202
    [stored] = worker.wait_for_session(sid, 1)
    assert stored["event_id"] == after["eventId"]
    [letter] = letters(worker, "client_timestamp_out_of_range", 1)
    assert letter["event"]["eventId"] == huge["eventId"]
    assert worker.stop() == 0  # SIGTERM still stops it


def _many_keys(prefix: str, count: int) -> dict[str, int]:
    return {f"{prefix}_{i}": i for i in range(count)}


def test_too_many_nested_property_keys_are_dead_lettered(worker: Worker) -> None:
    sid = session()
    wide = []
    for n in range(5):
        event = ev.click(worker.api_key, sid)
        event["properties"]["experiments"] = _many_keys(f"exp{n}", 300)
        wide.append(event)
    plain = ev.page_view(worker.api_key, sid)
    assert worker.post({"events": [*wide, plain]}).status_code == 202
    [stored] = worker.wait_for_session(sid, 1)
    assert stored["event_id"] == plain["eventId"]
    found = letters(worker, "too_many_property_keys", 5)
    assert {letter["event"]["eventId"] for letter in found} == {e["eventId"] for e in wide}


def _low_open_files_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def test_ten_thousand_distinct_nested_keys_store_under_1024_open_files(
    worker_factory: type[Worker],
) -> None:
    # One large insert (a wide part, files per column) holding 10,000 distinct nested keys.
    worker = worker_factory(  # type: ignore[call-arg]
        _preexec=_low_open_files_limit, TRACKFLOW_SINK_WINDOW_S="5"
    )
    worker.start()
    sid = session()
    wide = []
    for n in range(50):  # 50 events x 200 keys: 10,000 distinct paths
        event = ev.click(worker.api_key, sid)
        event["properties"]["experiments"] = _many_keys(f"e{n}", 200)
        wide.append(event)
    plain = [ev.page_view(worker.api_key, sid) for _ in range(4950)]
    batches = [wide + plain[:450]] + [plain[i : i + 500] for i in range(450, 4950, 500)]
    for batch in batches:
        assert worker.post({"events": batch}).status_code == 202
    deadline = time.monotonic() + 120
    while worker.metric("trackflow_rows_inserted_total") < 5000:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    assert worker.metric("trackflow_insert_failures_total") == 0
    assert worker.stop() == 0
    [row] = worker.query_store(
        f"SELECT uniqExact(event_id) AS n FROM events WHERE session_id = '{sid}'"
    )
    assert row["n"] == 5000


def test_readiness_reports_a_sink_that_cannot_store(
    worker_factory: type[Worker], tmp_path: Path
) -> None:
    flag = tmp_path / "refuse-inserts"
    worker = worker_factory(  # type: ignore[call-arg]
        TRACKFLOW_SINK_FAIL_FLAG=str(flag), TRACKFLOW_READY_STALL_S="3"
    ).start()
    flag.touch()
    sid = session()
    assert worker.post({"events": [ev.page_view(worker.api_key, sid)]}).status_code == 202
    deadline = time.monotonic() + 30
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{worker.base_url}/readyz", timeout=10)
        body = response.json()
        if response.status_code == 503:
            break
        time.sleep(0.5)
    assert body["status"] == "unavailable", body
    assert any(reason.startswith("sink:") for reason in body["stalled"]), body
    flag.unlink()
    worker.wait_for_session(sid, 1, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not worker.ready():
        time.sleep(0.5)
    assert worker.ready()


def test_replay_never_stores_a_spoofed_tenant(worker: Worker) -> None:
    sid = session()
    spoofed = ev.page_view(worker.api_key, sid)  # claims the worker's main tenant ...
    response = worker.post({"events": [spoofed]}, headers={"X-TrackFlow-Key": "other-key"})
    assert response.status_code == 202  # ... from a request authenticated as other-key
    [letter] = letters(worker, "tenant_mismatch", 1)
    assert letter["api_key"] == "other-key"
    worker.cli("dlq", "replay", "--reason", "tenant_mismatch")
    marker = ev.click(worker.api_key, sid)
    assert worker.post({"events": [marker]}).status_code == 202
    stored = worker.wait_for_session(sid, 1)
    time.sleep(2)  # a replayed batch would have been stored before the marker's or soon after
    stored = worker.session_events(sid)
    assert [e["event_id"] for e in stored] == [marker["eventId"]]


def test_slow_request_headers_are_disconnected(worker_factory: type[Worker]) -> None:
    worker = worker_factory(TRACKFLOW_HTTP_IDLE_TIMEOUT_S="2").start()  # type: ignore[call-arg]
    sockets = [socket.create_connection(("127.0.0.1", worker.port)) for _ in range(10)]
    for sock in sockets:
        sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.2)
    closed: set[int] = set()
    started = time.monotonic()
    while time.monotonic() - started < 12 and len(closed) < len(sockets):
        for n, sock in enumerate(sockets):
            if n in closed:
                continue
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                if sock.recv(1024) == b"":
                    closed.add(n)
            except TimeoutError:
                pass
            except OSError:
                closed.add(n)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    for sock in sockets:
        sock.close()
    assert len(closed) == len(sockets), f"{len(closed)} of {len(sockets)} closed"
    assert elapsed < 10
    assert worker.ready()  # the server itself is fine


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


def test_rows_the_store_refuses_are_isolated_and_dead_lettered(worker: Worker) -> None:
    sid = session()
    events = [ev.click(worker.api_key, sid) for _ in range(20)]
    outcome = process_batch(
        make_batch(events, api_key=worker.api_key),
        ValidationPolicy(tenant_keys=frozenset({worker.api_key})),
    )
    assert len(outcome.processed) == 20
    records: list[dict[str, Any]] = [dict(e) for e in outcome.processed]
    records[7]["event_id"] = "not-a-uuid"  # valid JSON the store cannot read into a UUID
    values = [orjson.dumps(r) for r in records]
    asyncio.run(
        _produce(
            worker.broker.url.removeprefix("kafka://"),
            worker.env["TRACKFLOW_PROCESSED_TOPIC"],
            values,
        )
    )
    stored = worker.wait_for_session(sid, 19, timeout=60)
    assert len(stored) == 19
    [letter] = letters(worker, "store_rejected_row", 1)
    assert letter["event"]["event_id"] == "not-a-uuid"
    assert "Code:" in letter["detail"]
    # Stored and committed: the sink moves on, it does not retry the batch.
    assert worker.ready()
    assert worker.metric("trackflow_rows_rejected_by_store_total") == 1
