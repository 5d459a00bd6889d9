"""Tenant isolation, rate limits, CORS and IP anonymization at the edge, on a real worker."""

from __future__ import annotations

import uuid

import httpx
import orjson

from harness.stack import Worker
from tests.support import events as ev


def session() -> str:
    return f"session-{uuid.uuid4().hex[:12]}"


def test_a_key_cannot_write_another_tenants_events(worker: Worker) -> None:
    sid = session()
    mine = ev.page_view(worker.api_key, sid)
    foreign = ev.click("other-key", sid)  # a registered key, but not the request's
    response = worker.post({"events": [mine, foreign]})
    assert response.status_code == 202
    rows = worker.wait_for_session(sid, 1)
    assert [r["event_id"] for r in rows] == [mine["eventId"]]
    # Authenticating by header: every event must carry that tenant.
    sid2 = session()
    response = worker.post(
        {"events": [ev.page_view(worker.api_key, sid2)]}, headers={"X-TrackFlow-Key": "other-key"}
    )
    assert response.status_code == 202
    worker.stop()
    stored = worker.query_store(
        f"SELECT tenant_id, count() AS n FROM events WHERE session_id IN ('{sid}', '{sid2}') "
        "GROUP BY tenant_id"
    )
    assert stored == [{"tenant_id": worker.api_key, "n": 1}]


def test_rate_limits_answer_429_with_retry_after(worker_factory: type[Worker]) -> None:
    worker = worker_factory(  # type: ignore[call-arg]
        TRACKFLOW_RATE_LIMIT_PER_IP="5/minute", TRACKFLOW_RATE_LIMIT_PER_TENANT="1000/minute"
    ).start()
    statuses = [
        worker.post({"events": [ev.page_view(worker.api_key, session())]}) for _ in range(7)
    ]
    assert [r.status_code for r in statuses] == [202] * 5 + [429] * 2
    limited = statuses[-1]
    assert limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # A browser's tracker reads Retry-After only if CORS lets it see the answer and the header.
    assert limited.headers["Access-Control-Allow-Origin"] == "*"
    exposed = limited.headers["Access-Control-Expose-Headers"].lower().replace(" ", "").split(",")
    assert "retry-after" in exposed


def test_tenant_event_rate_limit(worker_factory: type[Worker]) -> None:
    worker = worker_factory(TRACKFLOW_RATE_LIMIT_PER_TENANT="10/minute").start()  # type: ignore[call-arg]
    sid = session()
    first = worker.post({"events": [ev.page_view(worker.api_key, sid) for _ in range(8)]})
    second = worker.post({"events": [ev.page_view(worker.api_key, sid) for _ in range(8)]})
    assert (first.status_code, second.status_code) == (202, 429)
    assert "tenant rate limit" in second.json()["message"]


def test_cors_preflight_beacon_and_origin_allow_list(worker_factory: type[Worker]) -> None:
    allowed = orjson.dumps({"test-key": ["https://shop.example"]}).decode()
    worker = worker_factory(TRACKFLOW_ALLOWED_ORIGINS=allowed).start()  # type: ignore[call-arg]
    preflight = httpx.options(
        f"{worker.base_url}/v1/batch",
        headers={
            "Origin": "https://any.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    body = orjson.dumps({"events": [ev.page_view(worker.api_key, session())]})
    beacon = {"Content-Type": "text/plain;charset=UTF-8"}
    ok = worker.post(body, headers={**beacon, "Origin": "https://shop.example"})
    assert ok.status_code == 202
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    denied = worker.post(body, headers={**beacon, "Origin": "https://evil.example"})
    assert denied.status_code == 403
    assert denied.json()["error"] == "origin_not_allowed"
    other = orjson.dumps({"events": [ev.page_view("other-key", session())]})
    assert (
        worker.post(other, headers={**beacon, "Origin": "https://evil.example"}).status_code == 202
    )
    # What aiohttp answers by itself is JSON too.
    wrong_method = httpx.get(f"{worker.base_url}/v1/batch")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert "POST" in wrong_method.headers["Allow"]
    missing = httpx.post(f"{worker.base_url}/v1/batches", content=body)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


def test_ip_anonymization_and_untrusted_forwarded_for(worker_factory: type[Worker]) -> None:
    worker = worker_factory(TRACKFLOW_ANONYMIZE_IP="true").start()  # type: ignore[call-arg]
    sid = session()
    spoofed = {"X-Forwarded-For": "203.0.113.77", "X-Real-IP": "203.0.113.78"}
    assert worker.post({"events": [ev.page_view(worker.api_key, sid)]}, spoofed).status_code == 202
    [row] = worker.wait_for_session(sid, 1)
    assert row["ip_address"] == "127.0.0.0"  # the socket peer, last octet zeroed


def test_trusted_proxy_forwarded_for(worker_factory: type[Worker]) -> None:
    worker = worker_factory(TRACKFLOW_TRUSTED_PROXIES="127.0.0.1/32").start()  # type: ignore[call-arg]
    sid = session()
    headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    assert worker.post({"events": [ev.page_view(worker.api_key, sid)]}, headers).status_code == 202
    [row] = worker.wait_for_session(sid, 1)
    assert row["ip_address"] == "203.0.113.9"


def test_an_ingest_key_never_reads_even_when_also_set_as_a_read_secret(
    worker_factory: type[Worker],
) -> None:
    """The ingest key is public (it is in every page's tracker): a read secret equal to it, set
    by mistake, must not open the tenant's data."""
    key, secret = Worker.api_key, Worker.read_secret  # the harness's defaults
    worker = worker_factory(TRACKFLOW_READ_KEYS=f"{key}:{key},{key}:{secret}").start()  # type: ignore[call-arg]
    for bearer, status in ((key, 401), (secret, 200)):
        response = httpx.get(
            f"{worker.base_url}/v1/stats/health",
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=30,
        )
        assert response.status_code == status, response.text
