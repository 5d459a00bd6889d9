"""A batch in, ClickHouse rows out, on the real broker and a real worker process."""

from __future__ import annotations

import gzip
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

from harness.stack import Broker, Worker
from tests.support import events as ev
from tests.support.geoip import LONDON_IP, build_city_database
from tests.support.kafka import read_topic
from tests.support.processes import wait_until


def session() -> str:
    return f"session-{uuid.uuid4().hex[:12]}"


def test_seed_examples_are_stored_with_every_column(worker: Worker) -> None:
    assert "kafka consumer on the event loop" in worker.log_path.read_text()
    sid = session()
    sent = ev.seed_examples(worker.api_key, sid)
    before = ev.now_ms()
    response = worker.post({"events": sent}, headers={"User-Agent": "pytest-agent/1.0"})
    after = ev.now_ms()
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted", "accepted": 5}

    rows = {row["event_id"]: row for row in worker.wait_for_session(sid, 5)}
    assert set(rows) == {e["eventId"] for e in sent}
    for event in sent:
        row = rows[event["eventId"]]
        assert row["event_type"] == event["eventType"]
        assert row["timestamp"] == event["timestamp"]  # to the millisecond, no skew sent
        assert row["client_timestamp"] == event["timestamp"]
        assert row["tenant_id"] == worker.api_key
        assert row["session_id"] == sid
        assert row["user_id"] == "user-456"
        assert row["page_url"] == "https://example.com"
        assert row["referrer"] == "https://google.com"
        assert (row["device_type"], row["os"], row["browser"]) == ("desktop", "Windows", "Chrome")
        assert row["ip_address"] == "127.0.0.1"
        assert row["country"] is None and row["region"] is None and row["city"] is None
        assert before <= row["received_at"] <= after
        assert row["seq"] is None
        assert row["user_agent"] == "pytest-agent/1.0"
        assert row["inserted_at"] >= row["received_at"]

    by_type = {e["eventType"]: rows[e["eventId"]]["properties"] for e in sent[:4]}
    assert by_type["page_view"] == {"title": "Example Page"}
    assert by_type["click"] == {"tag": "BUTTON", "id": "submit-button"}
    assert by_type["performance"] == {"loadTime": 2450, "domContentLoaded": 1200}
    assert by_type["error"] == {
        **{k: sent[2]["properties"][k] for k in ("message", "source", "line", "col", "stack")},
        "name": None,  # the first error shape has no name; every typed key is returned
    }
    # The second error shape (fields at the top level) lands in the same property set.
    top_level = rows[sent[4]["eventId"]]["properties"]
    assert top_level == {
        "name": "TypeError",
        "message": "x is not a function",
        "stack": "TypeError: x is not a function\n    at main (app.js:7:3)",
        "source": "https://example.com/app.js",
        "line": 7,
        "col": 3,
    }


def test_bad_event_is_dead_lettered_and_good_ones_are_stored(worker: Worker) -> None:
    sid = session()
    good = [ev.page_view(worker.api_key, sid), ev.click(worker.api_key, sid)]
    missing = ev.performance(worker.api_key, sid)
    del missing["deviceInfo"]
    bad_uuid = {**ev.click(worker.api_key, sid), "eventId": "not-a-uuid"}
    response = worker.post({"events": [good[0], missing, bad_uuid, good[1]]})
    assert response.status_code == 202

    rows = worker.wait_for_session(sid, 2)
    assert {r["event_id"] for r in rows} == {e["eventId"] for e in good}

    letters = read_topic(worker.broker.bootstrap, worker.env["TRACKFLOW_DEAD_LETTER_TOPIC"], 2)
    by_id = {letter["event"]["eventId"]: letter for letter in letters}
    assert by_id[missing["eventId"]]["reason"] == "missing_field"
    assert by_id[missing["eventId"]]["field"] == "deviceInfo"
    assert by_id[missing["eventId"]]["tenant_id"] == worker.api_key
    assert by_id[missing["eventId"]]["event"] == missing
    assert by_id["not-a-uuid"]["reason"] == "invalid_field"
    assert by_id["not-a-uuid"]["field"] == "eventId"
    time.sleep(1.0)
    assert len(worker.session_events(sid)) == 2


def test_same_event_id_twice_counts_once(worker: Worker) -> None:
    sid = session()
    event = ev.click(worker.api_key, sid)
    assert worker.post({"events": [event]}).status_code == 202
    worker.wait_for_session(sid, 1)
    assert worker.post({"events": [event, ev.page_view(worker.api_key, sid)]}).status_code == 202
    rows = worker.wait_for_session(sid, 2)
    assert sorted(r["event_type"] for r in rows) == ["click", "page_view"]
    worker.stop()
    stored = worker.query_store(
        "SELECT count() AS n, uniqExact(event_id) AS u FROM events FINAL "
        f"WHERE session_id = '{sid}'"
    )
    assert stored == [{"n": 2, "u": 2}]


def test_a_repeat_whose_corrected_time_is_another_hour_is_read_once(worker: Worker) -> None:
    """The second delivery says its client's clock is two hours behind (sentAt), so its
    corrected time, and the hour in the table's sort key, differ from the first's: FINAL keeps
    both rows, and the session's event stream still shows the event once, at its first time."""
    sid = session()
    event = ev.click(worker.api_key, sid)
    assert worker.post({"events": [event], "sentAt": ev.now_ms()}).status_code == 202
    worker.wait_for_session(sid, 1)
    two_hours_behind = ev.now_ms() - 2 * 3_600_000
    assert worker.post({"events": [event], "sentAt": two_hours_behind}).status_code == 202
    wait_until(lambda: worker.metric("trackflow_rows_inserted_total") >= 2, 30, "the repeat stored")
    rows = worker.session_events(sid)
    assert [r["event_id"] for r in rows] == [event["eventId"]]
    assert rows[0]["timestamp"] == event["timestamp"]
    worker.stop()
    stored = worker.query_store(f"SELECT count() AS n FROM events FINAL WHERE session_id = '{sid}'")
    assert stored == [{"n": 2}]  # both rows are there: the read, not the store, collapses them


def test_unknown_api_key_gets_401_and_stores_nothing(worker: Worker) -> None:
    sid = session()
    response = worker.post({"events": [ev.page_view("no-such-key", sid)]})
    assert response.status_code == 401
    assert response.json()["error"] == "unknown_api_key"
    marker = session()
    assert worker.post({"events": [ev.page_view(worker.api_key, marker)]}).status_code == 202
    worker.wait_for_session(marker, 1)
    worker.stop()
    assert worker.query_store(f"SELECT count() AS n FROM events WHERE session_id = '{sid}'") == [
        {"n": 0}
    ]


def test_text_plain_and_gzip_bodies_are_accepted(worker: Worker) -> None:
    sid = session()
    plain = orjson.dumps({"events": [ev.page_view(worker.api_key, sid)]})
    response = worker.post(plain, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert response.status_code == 202
    zipped = gzip.compress(orjson.dumps({"events": [ev.click(worker.api_key, sid)]}))
    response = worker.post(zipped, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 202
    assert len(worker.wait_for_session(sid, 2)) == 2


def test_hopeless_requests_get_named_4xx(worker: Worker) -> None:
    cases = [
        (b"{not json", {}, 400, "malformed_json"),
        (b'{"evnts": []}', {}, 400, "malformed_envelope"),
        (b"<xml/>", {"Content-Type": "application/xml"}, 415, "unsupported_media_type"),
        (b"x" * 2_000_000, {}, 413, "payload_too_large"),
        (gzip.compress(b" " * 10_000_000), {"Content-Encoding": "gzip"}, 413, "payload_too_large"),
        (orjson.dumps({"events": [{}] * 501}), {}, 413, "too_many_events"),
    ]
    for body, headers, status, code in cases:
        response = worker.post(body, headers=headers)
        assert response.status_code == status, (code, response.text)
        assert response.json()["error"] == code
        assert response.json()["message"]


def test_sigterm_flushes_the_sink_buffer(worker_factory: type[Worker]) -> None:
    worker = worker_factory(  # type: ignore[call-arg]
        TRACKFLOW_SINK_WINDOW_S="300", TRACKFLOW_SINK_BATCH_SIZE="100000"
    ).start()
    sid = session()
    sent = [ev.page_view(worker.api_key, sid) for _ in range(50)]
    for chunk in (sent[:25], sent[25:]):
        assert worker.post({"events": chunk}).status_code == 202
    deadline = time.monotonic() + 30
    while worker.metric("trackflow_sink_buffered_rows") < 50:
        assert time.monotonic() < deadline, "events never reached the sink buffer"
        time.sleep(0.2)
    assert worker.metric("trackflow_rows_inserted_total") == 0
    assert worker.stop() == 0
    stored = worker.query_store(f"SELECT count() AS n FROM events FINAL WHERE session_id = '{sid}'")
    assert stored == [{"n": 50}]


def test_faust_s_threaded_consumer_still_stores_and_stops(
    worker_factory: type[Worker],
) -> None:
    """TRACKFLOW_KAFKA_CONSUMER_IN_LOOP=false: the raw topic read by Faust's own consumer
    thread, as before the consumer moved onto the worker's loop (the rest of the suite)."""
    worker = worker_factory(TRACKFLOW_KAFKA_CONSUMER_IN_LOOP="false").start()  # type: ignore[call-arg]
    assert "kafka consumer on a thread of its own" in worker.log_path.read_text()
    sid = session()
    sent = [ev.page_view(worker.api_key, sid) for _ in range(20)]
    for chunk in (sent[:10], sent[10:]):
        assert worker.post({"events": chunk}).status_code == 202
    rows = worker.wait_for_session(sid, 20)
    assert {r["event_id"] for r in rows} == {e["eventId"] for e in sent}
    assert worker.stop() == 0


def test_compressed_batches_are_written_and_read_back(
    worker_factory: type[Worker], broker: Broker
) -> None:
    """TRACKFLOW_PRODUCER_COMPRESSION=zstd: the raw and processed topics hold zstd batches, which
    the validate stage and the sink read."""
    worker = worker_factory(TRACKFLOW_PRODUCER_COMPRESSION="zstd").start()  # type: ignore[call-arg]
    sid = session()
    sent = [ev.page_view(worker.api_key, sid) for _ in range(20)]
    assert worker.post({"events": sent}).status_code == 202
    rows = worker.wait_for_session(sid, 20)
    assert {r["event_id"] for r in rows} == {e["eventId"] for e in sent}
    if not broker.managed:
        return  # an existing cluster's log files are not on this machine
    data = Path(broker.env["TRACKFLOW_KAFKA_DIR"]) / "data"
    for topic in (worker.env["TRACKFLOW_RAW_TOPIC"], worker.env["TRACKFLOW_PROCESSED_TOPIC"]):
        segments = [
            p for p in data.glob(f"{topic}-*/*.log") if p.parent.name[len(topic) + 1 :].isdigit()
        ]
        codecs = [codec for segment in segments for codec in batch_codecs(segment.read_bytes())]
        assert codecs and set(codecs) == {ZSTD}, (topic, codecs)


ZSTD = 4  # the codec bits of a Kafka record batch's attributes


def batch_codecs(log: bytes) -> list[int]:
    """The codec of each record batch in a Kafka log segment (v2 batches: base offset, length,
    leader epoch, magic, CRC, then the attributes, whose low three bits name the codec)."""
    codecs, position = [], 0
    while position + 23 <= len(log):
        (length,) = struct.unpack_from(">i", log, position + 8)
        (attributes,) = struct.unpack_from(">h", log, position + 21)
        codecs.append(attributes & 0x07)
        position += 12 + length
    return codecs


def test_a_round_larger_than_the_byte_bound_is_stored_whole_in_parts(
    worker_factory: type[Worker],
) -> None:
    worker = worker_factory(  # type: ignore[call-arg]
        TRACKFLOW_VALIDATE_ROUND_MAX_BYTES="1024", TRACKFLOW_VALIDATE_BATCH_WITHIN_S="0.5"
    ).start()
    sid = session()
    sent = [ev.page_view(worker.api_key, sid) for _ in range(60)]
    with ThreadPoolExecutor(6) as pool:  # concurrent POSTs: one round, several raw records
        answers = list(pool.map(lambda part: worker.post({"events": part}), chunks(sent, 10)))
    assert [a.status_code for a in answers] == [202] * 6
    rows = worker.wait_for_session(sid, 60)
    assert sorted(r["event_id"] for r in rows) == sorted(e["eventId"] for e in sent)
    assert worker.metric("trackflow_events_processed_total") >= 60
    worker.stop()
    stored = worker.query_store(
        f"SELECT count() AS n, uniqExact(event_id) AS u FROM events WHERE session_id = '{sid}'"
    )
    assert stored == [{"n": 60, "u": 60}]


def test_the_store_s_parts_and_merges_are_gauged(worker_factory: type[Worker]) -> None:
    worker = worker_factory(TRACKFLOW_STORE_STATS_INTERVAL_S="0.2").start()  # type: ignore[call-arg]
    sid = session()
    assert worker.post({"events": [ev.page_view(worker.api_key, sid)]}).status_code == 202
    worker.wait_for_session(sid, 1)
    deadline = time.monotonic() + 10
    while worker.metric("trackflow_store_active_parts") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.metric("trackflow_store_active_parts") >= 1
    assert "store activity not sampled" not in worker.log_path.read_text()
    assert worker.stop() == 0


def chunks(items: list[dict[str, object]], size: int) -> list[list[dict[str, object]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def test_a_client_clock_hours_off_lands_at_the_right_time(worker: Worker) -> None:
    sid = session()
    skew = 3 * 3600 * 1000  # the browser's clock is three hours behind
    client_now = ev.now_ms() - skew
    event = ev.click(worker.api_key, sid, ts=client_now - 5000)  # clicked 5 s before sending
    response = worker.post({"events": [event], "sentAt": client_now})
    assert response.status_code == 202
    [row] = worker.wait_for_session(sid, 1)
    assert row["client_timestamp"] == event["timestamp"]
    # Corrected = client time + (received_at - sentAt): 5 s before the server received it.
    assert row["timestamp"] == event["timestamp"] + (row["received_at"] - client_now)
    assert abs(row["timestamp"] - (row["received_at"] - 5000)) < 1000


def test_sequence_gaps_are_counted_as_lost_events(worker: Worker) -> None:
    sid = session()
    sent = [{**ev.page_view(worker.api_key, sid), "seq": n} for n in (1, 2, 4, 5, 8)]
    assert worker.post({"events": sent}).status_code == 202
    worker.wait_for_session(sid, 5)
    response = worker.read("/v1/query/loss")
    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["lost"]) == (5, 3)  # seq 3, 6 and 7 never arrived
    assert body["by_browser"][0]["browser"] == "Chrome"


def test_a_session_begun_before_the_loss_window_has_no_loss_for_it(worker: Worker) -> None:
    """seq 1-5 two hours ago, 6-10 now: over the last hour nothing was lost."""
    sid = session()
    two_hours_ago = ev.now_ms() - 2 * 3_600_000
    earlier = [{**ev.click(worker.api_key, sid, ts=two_hours_ago), "seq": n} for n in range(1, 6)]
    now = [{**ev.click(worker.api_key, sid), "seq": n} for n in range(6, 11)]
    assert worker.post({"events": earlier + now}).status_code == 202
    worker.wait_for_session(sid, 10)
    response = worker.read("/v1/query/loss", hours="1")
    assert response.status_code == 200
    assert (response.json()["received"], response.json()["lost"]) == (10, 0)


def test_bad_event_and_loss_parameters_are_refused_by_name(worker: Worker) -> None:
    """Out of range, unknown or conflicting: 400 naming the problem, never a clamped answer."""
    for path, params, message in (
        ("/v1/query/loss", {"hours": "0"}, "hours must be between 1 and 9600"),
        ("/v1/query/loss", {"hour": "2"}, "unknown parameter 'hour'"),
        ("/v1/query/events", {"session_id": "s", "limit": "0"}, "limit must be between"),
        ("/v1/query/events", {"session_id": "s", "user_id": "u"}, "give session_id or user_id"),
    ):
        response = worker.read(path, **params)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["error"] == "bad_request"
        assert message in response.json()["message"]


def test_a_request_near_the_size_limits_is_stored(worker: Worker) -> None:
    sid = session()
    events = []
    for _ in range(450):
        event = ev.page_view(worker.api_key, sid)
        event["properties"]["padding"] = "x" * 3500  # ~3.8 KB per event, ~1.7 MB per request
        events.append(event)
    zipped = gzip.compress(orjson.dumps({"events": events}))
    response = worker.post(zipped, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 202, response.text
    rows = worker.wait_for_session(sid, 450)
    assert len(rows) == 450
    assert {len(r["properties"]["padding"]) for r in rows} == {2048}  # capped per string


def test_json_logs(worker_factory: type[Worker]) -> None:
    worker = worker_factory(TRACKFLOW_LOG_FORMAT="json").start()  # type: ignore[call-arg]
    sid = session()
    assert worker.post({"events": [ev.page_view(worker.api_key, sid)]}).status_code == 202
    worker.wait_for_session(sid, 1)
    worker.stop()
    lines = [line for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
    entries = [orjson.loads(line) for line in lines]
    assert any(e["message"] == "[^Worker]: Ready" for e in entries)
    assert any(
        e["logger"] == "agents.sink" and e["message"].startswith("sink started") for e in entries
    )
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)


def test_geoip_enrichment_from_a_real_database(
    worker_factory: type[Worker], tmp_path: Path
) -> None:
    database = build_city_database(tmp_path / "city.mmdb")
    worker = worker_factory(  # type: ignore[call-arg]
        TRACKFLOW_GEOIP_DATABASE=str(database), TRACKFLOW_TRUSTED_PROXIES="127.0.0.1"
    ).start()
    sid = session()
    headers = {"X-Forwarded-For": LONDON_IP}
    assert worker.post({"events": [ev.page_view(worker.api_key, sid)]}, headers).status_code == 202
    [row] = worker.wait_for_session(sid, 1)
    assert row["ip_address"] == LONDON_IP
    assert (row["country"], row["region"], row["city"]) == ("GB", "England", "London")


def test_the_metrics_the_readme_says_to_watch_are_served(worker: Worker) -> None:
    """README "Operating": the series operators alert on exist under the documented names and
    labels once a worker has taken a POST."""
    sid = f"session-{uuid.uuid4().hex[:12]}"
    assert worker.post({"events": [ev.page_view(worker.api_key, sid)]}).status_code == 202
    worker.wait_for_session(sid, 1)
    text = httpx.get(f"{worker.base_url}/metrics", timeout=10).text
    samples = {line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    for stage in ("validate", "sink"):
        assert f'trackflow_oldest_uncommitted_seconds{{stage="{stage}"}}' in samples
    for phase in ("body", "decode", "enqueue", "ack"):
        assert f'trackflow_edge_phase_seconds_count{{phase="{phase}"}}' in samples
    for name in (
        "trackflow_event_loop_lag_seconds_count",
        "trackflow_insert_failures_total",
        "trackflow_rows_inserted_total",
        "trackflow_events_accepted_total",
        "trackflow_sink_buffered_rows",
    ):
        assert name in samples, name
    # trackflow_gc_pause_seconds{generation} has samples only once a collection has run.
    assert "# TYPE trackflow_gc_pause_seconds histogram" in text
