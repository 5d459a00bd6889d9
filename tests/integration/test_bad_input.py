"""Hostile and broken input against a real worker: every case ends in a 4xx with a JSON error or
in a dead-letter record with a reason; never a 5xx, never a stuck worker, never a lost valid
event from the same batch.
"""

from __future__ import annotations

import copy
import gzip
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.stack import Broker, Worker
from tests.support import events as ev
from tests.support.kafka import read_topic_until
from tests.support.strategies import json_values

KEY = "test-key"


class Ledger:
    """What one test sent, and what must therefore be stored or dead-lettered."""

    def __init__(self, name: str) -> None:
        self.session = f"{name}-{uuid.uuid4().hex[:8]}"  # the good events' session
        self.cases = 0
        self.good: dict[str, set[str]] = {}  # session -> eventIds that must be stored
        self.bad: dict[str, str | None] = {}  # eventId -> expected reason (None: any)
        self.statuses: dict[int, int] = {}


@pytest.fixture(scope="module")
def bad_worker(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = Worker(
        broker=broker,
        workdir=tmp_path_factory.mktemp("bad-input"),
        overrides={
            "TRACKFLOW_RATE_LIMIT_PER_IP": "",
            "TRACKFLOW_RATE_LIMIT_PER_TENANT": "",
            "TRACKFLOW_BODY_TIMEOUT_S": "2",
        },
    ).start()
    yield worker
    if worker.proc is not None and worker.proc.poll() is None:
        worker.stop()


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Ledger:
    """A ledger of its own for every test: each test checks the outcomes of what it sent."""
    return Ledger(request.node.name[:40])


def post(worker: Worker, ledger: Ledger, body: bytes, headers: dict[str, str]) -> httpx.Response:
    response = httpx.post(f"{worker.base_url}/v1/batch", content=body, headers=headers, timeout=30)
    ledger.cases += 1
    ledger.statuses[response.status_code] = ledger.statuses.get(response.status_code, 0) + 1
    assert response.status_code < 500, response.text
    if response.status_code != 202:
        assert 400 <= response.status_code < 500
        error = response.json()
        assert error["error"] and error["message"], error
    return response


def good(session: str = "bad-input-good") -> dict[str, Any]:
    return ev.page_view(KEY, session)


def with_good(
    worker: Worker, ledger: Ledger, bad: dict[str, Any] | Any, reason: str | None
) -> None:
    """Send a bad event beside a good one: the good one is stored, the bad one dead-lettered."""
    keep = good(ledger.session)
    response = post(
        worker, ledger, orjson.dumps({"events": [keep, bad]}), {"Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text
    ledger.good.setdefault(keep["sessionId"], set()).add(keep["eventId"])
    if isinstance(bad, dict) and isinstance(bad.get("eventId"), str):
        ledger.bad[bad["eventId"]] = reason


WRONG_TYPES: dict[str, list[Any]] = {
    "eventType": [1, None, ["click"], {"t": 1}],
    "timestamp": ["1625539200000", True, None, [1], {"ms": 1}, -5, 0],
    "tenantId": [1, None, ["k"]],
    "sessionId": [1, None, "", {"s": 1}],
    "userId": [1, ["u"], {"u": 1}],
    "pageUrl": [1, None, ["u"]],
    "referrer": [1, {"r": 1}],
    "deviceInfo": ["desktop", None, [1], {"deviceType": 1, "os": "x", "browser": "y"}],
    "properties": ["title", None, [1], 3],
}


def assert_outcomes(worker: Worker, ledger: Ledger, tmp_path: Path) -> None:
    """Every good event the test sent is stored and every bad one dead-lettered (with its
    reason where one is expected); the worker is still ready."""
    for session, expected in ledger.good.items():
        deadline = time.monotonic() + 60
        while True:
            stored = {r["event_id"] for r in worker.session_events(session)}
            if expected <= stored or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert expected - stored == set(), f"{len(expected - stored)} good events of {session} lost"

    def by_event_id(letters: list[Any]) -> dict[str, Any]:
        return {
            letter["event"].get("eventId"): letter
            for letter in letters
            if isinstance(letter["event"], dict) and isinstance(letter["event"].get("eventId"), str)
        }

    wanted = set(ledger.bad)
    letters = (
        read_topic_until(
            worker.broker.bootstrap,
            worker.env["TRACKFLOW_DEAD_LETTER_TOPIC"],
            lambda letters: wanted <= set(by_event_id(letters)),
        )
        if wanted
        else []
    )
    by_id = by_event_id(letters)
    for event_id, reason in ledger.bad.items():
        assert event_id in by_id, f"no dead letter for {event_id}"
        letter = by_id[event_id]
        assert letter["reason"], letter
        if reason is not None:
            assert letter["reason"] == reason, letter
    assert worker.ready(), worker.log_tail()
    statuses = {str(k): v for k, v in sorted(ledger.statuses.items())}
    summary = {"cases": ledger.cases, "statuses": statuses, "dead_letters": len(wanted)}
    print("bad-input summary:", orjson.dumps(summary).decode())
    (tmp_path / "summary.json").write_bytes(orjson.dumps(summary))


def test_wrong_types_in_every_field(bad_worker: Worker, ledger: Ledger, tmp_path: Path) -> None:
    for field, values in WRONG_TYPES.items():
        for value in values:
            event = {**ev.page_view(KEY, "bad-types"), field: value}
            expected = "unknown_event_type" if field == "eventType" else None
            if field == "tenantId":
                expected = None  # unknown_tenant or invalid_field
            with_good(bad_worker, ledger, event, expected)
    for field in ("eventId", "tenantId", "sessionId", "deviceInfo", "pageUrl", "properties"):
        event = ev.click(KEY, "bad-missing")
        del event[field]
        if field == "eventId":
            with_good(bad_worker, ledger, event, None)  # no id to track
        else:
            with_good(bad_worker, ledger, event, "missing_field")
    assert ledger.good and ledger.bad
    assert_outcomes(bad_worker, ledger, tmp_path)


def test_numbers_times_types_and_tenants(
    bad_worker: Worker, ledger: Ledger, tmp_path: Path
) -> None:
    now = ev.now_ms()
    cases: list[tuple[dict[str, Any], str]] = [
        ({**ev.page_view(KEY, "t"), "timestamp": now + 10 * 86_400_000}, "timestamp_out_of_range"),
        (
            {**ev.page_view(KEY, "t"), "timestamp": now - 2 * 365 * 86_400_000},
            "timestamp_out_of_range",
        ),
        ({**ev.page_view(KEY, "t"), "timestamp": 1625539200000}, "timestamp_out_of_range"),
        ({**ev.page_view(KEY, "t"), "timestamp": 1e30}, "client_timestamp_out_of_range"),
        (
            {**ev.performance(KEY, "t"), "properties": {"loadTime": -1, "domContentLoaded": 1}},
            "invalid_field",
        ),
        (
            {**ev.performance(KEY, "t"), "properties": {"loadTime": 1e300, "domContentLoaded": 1}},
            "invalid_field",
        ),
        ({**ev.page_view(KEY, "t"), "eventType": "purchase"}, "unknown_event_type"),
        ({**ev.page_view(KEY, "t"), "eventId": "550e8400-e29b-41d4-a716"}, "invalid_field"),
        ({**ev.page_view(KEY, "t"), "tenantId": "nobody"}, "unknown_tenant"),
        ({**ev.page_view(KEY, "t"), "tenantId": "other-key"}, "tenant_mismatch"),
        ({**ev.error_top_level(KEY, "t"), "line": -3}, "invalid_field"),
        (
            {
                **ev.page_view(KEY, "t"),
                "properties": {"title": "t", **{f"k{i}": i for i in range(100)}},
            },
            "too_many_properties",
        ),
    ]
    for event, reason in cases:
        with_good(bad_worker, ledger, event, reason)
    with_good(bad_worker, ledger, "not an object", None)
    with_good(bad_worker, ledger, [1, 2, 3], None)
    assert ledger.good and ledger.bad
    assert_outcomes(bad_worker, ledger, tmp_path)


def test_a_bad_tenant_first_in_the_batch_keeps_the_good_event_after_it(
    bad_worker: Worker, ledger: Ledger, tmp_path: Path
) -> None:
    # [good, bad] stores good and dead-letters bad; so must [bad, good].
    keep = good(ledger.session)
    bad = {**good(ledger.session), "tenantId": "nobody"}
    body = orjson.dumps({"events": [bad, keep]})
    response = post(bad_worker, ledger, body, {"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    ledger.bad[bad["eventId"]] = "unknown_tenant"
    ledger.good[ledger.session] = {keep["eventId"]}
    assert_outcomes(bad_worker, ledger, tmp_path)


def test_control_characters_and_huge_strings_are_capped(
    bad_worker: Worker, ledger: Ledger, tmp_path: Path
) -> None:
    sid = f"caps-{uuid.uuid4().hex[:8]}"
    event = ev.error_in_properties(KEY, sid)
    event["pageUrl"] = "https://example.com/\x00\x07" + "a" * 600_000
    event["properties"]["message"] = "bad\x1b[31m\x00message"
    event["properties"]["stack"] = "line1\n\tline2\x00" + "s" * 100_000
    event["properties"]["nested.key with spaces"] = {"deep": [{"x": "\x01y"}] * 3}
    response = post(
        bad_worker, ledger, orjson.dumps({"events": [event]}), {"Content-Type": "text/plain"}
    )
    assert response.status_code == 202
    [row] = bad_worker.wait_for_session(sid, 1)
    assert row["page_url"] == "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert row["properties"]["message"] == "bad[31mmessage"
    assert row["properties"]["stack"].startswith("line1\n\tline2s")
    assert len(row["properties"]["stack"]) == 16384
    assert row["properties"]["nested_key_with_spaces"] == {"deep": [{"x": "y"}] * 3}
    assert_outcomes(bad_worker, ledger, tmp_path)


def test_hopeless_requests(bad_worker: Worker, ledger: Ledger, tmp_path: Path) -> None:
    one = orjson.dumps({"events": [good()]})
    json_headers = {"Content-Type": "application/json"}
    cases: list[tuple[bytes, dict[str, str], int]] = [
        (b"x" * 1_100_000, json_headers, 413),
        (gzip.compress(b"[" * 20_000_000), {**json_headers, "Content-Encoding": "gzip"}, 413),
        (gzip.compress(one)[:-10], {**json_headers, "Content-Encoding": "gzip"}, 400),
        (b"[" * 5000 + b"]" * 5000, json_headers, 400),
        (b'{"events": [{"a": "\xff\xfe"}]}', json_headers, 400),
        (b'{"events": [NaN]}', json_headers, 400),
        (b'{"events": [1e400]}', json_headers, 400),
        (b'{"events": "nope"}', json_headers, 400),
        (b'{"events": []}', json_headers, 400),
        (b"", json_headers, 400),
        (b"null", json_headers, 400),
        (one, {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (one, {"Content-Type": "multipart/form-data; boundary=x"}, 415),
        (one, {**json_headers, "Content-Encoding": "br"}, 415),
        (orjson.dumps({"events": [ev.page_view("nobody", "x")]}), json_headers, 401),
        (orjson.dumps({"events": [{"no": "tenant"}]}), json_headers, 401),
        (orjson.dumps({"events": [good()] * 501}), json_headers, 413),
    ]
    for body, headers, status in cases:
        response = post(bad_worker, ledger, body, headers)
        assert response.status_code == status, (status, body[:60], response.text)
    assert_outcomes(bad_worker, ledger, tmp_path)


def test_an_event_nested_deeper_than_kafka_records_are_written_keeps_the_batch(
    bad_worker: Worker, ledger: Ledger, tmp_path: Path
) -> None:
    # orjson reads 1,024 levels but writes 254: the raw record carries the deep part as null
    # (it was answered 503 kafka_unavailable, which the tracker retries forever).
    keep, deep = good(ledger.session), good(ledger.session)
    deep["properties"]["d"] = 0
    body = orjson.dumps({"events": [keep, deep]}).replace(
        b'"d":0', b'"d":' + b"[" * 300 + b"]" * 300, 1
    )
    response = post(bad_worker, ledger, body, {"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    ledger.good.setdefault(ledger.session, set()).update({keep["eventId"], deep["eventId"]})
    assert_outcomes(bad_worker, ledger, tmp_path)


def test_a_lone_surrogate_from_a_cut_emoji_keeps_the_batch(
    bad_worker: Worker, ledger: Ledger, tmp_path: Path
) -> None:
    keep = good(ledger.session)
    error = ev.error_in_properties(KEY, ledger.session)
    # The tracker caps a message with slice(0, 2000): an emoji across the cut leaves its high
    # half, which JSON.stringify (and json.dumps) writes as the escape \ud83d.
    error["properties"]["message"] = "x" * 1999 + "\ud83d"
    body = json.dumps({"events": [keep, error]}).encode()
    assert b"\\ud83d" in body
    response = post(bad_worker, ledger, body, {"Content-Type": "text/plain;charset=UTF-8"})
    assert response.status_code == 202, response.text
    ledger.good.setdefault(ledger.session, set()).update({keep["eventId"], error["eventId"]})
    assert_outcomes(bad_worker, ledger, tmp_path)
    [stored] = [r for r in bad_worker.session_events(ledger.session) if r["event_type"] == "error"]
    assert stored["properties"]["message"] == "x" * 1999 + "\ufffd"


def test_duplicate_keys_and_spoofed_forwarded_for(
    bad_worker: Worker, ledger: Ledger, tmp_path: Path
) -> None:
    sid = f"dup-{uuid.uuid4().hex[:8]}"
    event = ev.page_view(KEY, sid)
    body = orjson.dumps({"events": [event]})
    # The same key twice: the last one wins, as in every mainstream JSON parser.
    body = body.replace(b'"sessionId":', b'"sessionId":"ignored","sessionId":', 1)
    headers = {"Content-Type": "application/json", "X-Forwarded-For": "8.8.8.8"}
    assert post(bad_worker, ledger, body, headers).status_code == 202
    [row] = bad_worker.wait_for_session(sid, 1)
    assert row["ip_address"] == "127.0.0.1"
    assert_outcomes(bad_worker, ledger, tmp_path)


def test_slow_and_partial_bodies(bad_worker: Worker, ledger: Ledger, tmp_path: Path) -> None:
    def raw_request(body_part: bytes, length: int, close_early: bool) -> bytes:
        with socket.create_connection(("127.0.0.1", bad_worker.port), timeout=30) as sock:
            head = (
                f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\n"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()
            sock.sendall(head + body_part)
            if close_early:
                sock.shutdown(socket.SHUT_WR)
            # Read until the server answers or closes (it may linger to drain the unsent body).
            data = b""
            while (chunk := sock.recv(65536)) and b"}" not in data + chunk:
                data += chunk
            return data + chunk

    started = time.monotonic()
    slow = raw_request(b'{"events": [', 5000, close_early=False)
    assert slow.startswith(b"HTTP/1.1 408"), slow[:200]
    assert b"body_timeout" in slow
    assert time.monotonic() - started < 10
    log_before = bad_worker.log_path.stat().st_size
    raw_request(b'{"events": [', 5000, close_early=True)  # the client gives up mid-body
    ledger.cases += 2
    # Not a failure of the worker: no 500 path, no traceback at ERROR in its log.
    time.sleep(0.5)
    log_after = bad_worker.log_path.read_bytes()[log_before:]
    assert b"request failed" not in log_after, log_after[-2000:]
    assert httpx.get(f"{bad_worker.base_url}/healthz").status_code == 200
    assert_outcomes(bad_worker, ledger, tmp_path)


FIELDS = [
    "eventId",
    "eventType",
    "timestamp",
    "tenantId",
    "sessionId",
    "userId",
    "pageUrl",
    "referrer",
    "deviceInfo",
    "properties",
]


@st.composite
def mutated_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [ev.page_view, ev.click, ev.error_in_properties, ev.performance, ev.error_top_level]
        )
    )
    event = copy.deepcopy(kind(KEY, "fuzz"))
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        action = draw(st.sampled_from(["drop", "replace", "replace_nested"]))
        if action == "drop":
            event.pop(field, None)
        elif action == "replace" or not isinstance(event.get(field), dict):
            event[field] = draw(json_values)
        else:
            inner = event[field]
            if inner:
                key = draw(st.sampled_from(sorted(inner)))
                inner[key] = draw(json_values)
    return event


def test_fuzzed_batches_never_5xx_and_keep_the_good_event(
    bad_worker: Worker, ledger: Ledger, tmp_path: Path
) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(events=st.lists(mutated_event(), min_size=1, max_size=5))
    def send(events: list[dict[str, Any]]) -> None:
        keep = good(ledger.session)
        body = orjson.dumps({"events": [*events, keep]})
        response = post(bad_worker, ledger, body, {"Content-Type": "application/json"})
        if response.status_code == 202:
            ledger.good.setdefault(keep["sessionId"], set()).add(keep["eventId"])

    send()
    assert_outcomes(bad_worker, ledger, tmp_path)
