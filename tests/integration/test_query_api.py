"""The read API on a real worker: known events in through POST /v1/batch, exact figures out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.stack import Broker, Worker
from tests.support.stats_data import (
    E1_MESSAGE,
    E1_SOURCE,
    E2_MESSAGE,
    HOUR,
    MINUTE,
    SECRET_A,
    SECRET_B,
    SITE,
    TENANT_A,
    TENANT_B,
    Dataset,
    percentiles,
    stats,
    stats_worker,
)

HOME, PRICING, DOCS = f"{SITE}/", f"{SITE}/pricing", f"{SITE}/docs"


@pytest.fixture(scope="module")
def stack(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, Dataset, int]]:
    yield from stats_worker(broker, tmp_path_factory.mktemp("query-api"))


@pytest.fixture(scope="module")
def worker(stack: tuple[Worker, Dataset, int]) -> Worker:
    return stack[0]


@pytest.fixture(scope="module")
def data(stack: tuple[Worker, Dataset, int]) -> Dataset:
    return stack[1]


def get(worker: Worker, path: str, secret: str = SECRET_A, **params: str) -> dict[str, Any]:
    response = stats(worker, path, secret, **params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_duplicates_were_really_stored(stack: tuple[Worker, Dataset, int]) -> None:
    worker, data, stored = stack
    unique = len(data.tenant_a) + len(data.tenant_b)
    assert worker.metric("trackflow_rows_inserted_total") == stored == unique + 6


def test_traffic_per_hour(worker: Worker, data: Dataset) -> None:
    body = get(worker, "traffic", **data.range_params(interval="hour"))
    assert body["range"] == {
        "from": data.start,
        "to": data.end,
        "interval": "hour",
        "filters": {},
        "include_bots": False,
    }
    assert body["totals"] == {"page_views": 7, "sessions": 4, "users": 2}
    assert body["series"] == [
        {"t": data.h0, "page_views": 2, "sessions": 1, "users": 1},
        {"t": data.h0 + HOUR, "page_views": 1, "sessions": 1, "users": 0},
        {"t": data.h0 + 2 * HOUR, "page_views": 4, "sessions": 2, "users": 2},
    ]


def test_traffic_per_minute_fills_empty_buckets(worker: Worker, data: Dataset) -> None:
    body = get(worker, "traffic", **data.range_params())  # 3 h: auto picks minutes
    assert body["range"]["interval"] == "minute"
    assert len(body["series"]) == 180
    nonzero = {p["t"]: p["page_views"] for p in body["series"] if p["page_views"]}
    h0, m = data.h0, MINUTE
    assert nonzero == {
        h0 + m: 1, h0 + 5 * m: 1, h0 + 65 * m: 1, h0 + 130 * m: 1, h0 + 131 * m: 1,
        h0 + 135 * m: 1, h0 + 140 * m: 1,
    }  # fmt: skip
    assert body["totals"] == {"page_views": 7, "sessions": 4, "users": 2}


def test_range_bounds_are_half_open(worker: Worker, data: Dataset) -> None:
    # [from, to): the page view at h0+1m is out when from = h0+1m+1ms, in when to = h0+1m+1ms.
    later = get(worker, "traffic", **{"from": str(data.h0 + MINUTE + 1), "to": str(data.end)})
    assert later["totals"]["page_views"] == 6
    only = get(worker, "traffic", **{"from": str(data.h0), "to": str(data.h0 + MINUTE + 1)})
    assert only["totals"] == {"page_views": 1, "sessions": 1, "users": 1}


def test_partial_hours_at_the_range_ends(worker: Worker, data: Dataset) -> None:
    # Per hour from h0+6m to h0+133m: sessions of the whole hour h0+1h come from the
    # session-hour rollup, those of the partial hours at both ends from the events.
    h0, m = data.h0, MINUTE
    bounds = {"from": str(h0 + 6 * m), "to": str(h0 + 133 * m)}
    body = get(worker, "traffic", interval="hour", **bounds)
    assert body["totals"] == {"page_views": 3, "sessions": 3, "users": 2}
    assert body["series"] == [
        {"t": h0, "page_views": 0, "sessions": 1, "users": 1},
        {"t": h0 + HOUR, "page_views": 1, "sessions": 1, "users": 0},
        {"t": h0 + 2 * HOUR, "page_views": 2, "sessions": 1, "users": 1},
    ]
    by_minute = get(worker, "traffic", **bounds)  # minutes: every figure from the events
    assert by_minute["range"]["interval"] == "minute"
    assert by_minute["totals"] == body["totals"]
    rows = get(worker, "breakdown", by="os", **bounds)["rows"]
    assert rows == [
        {"value": "Mac", "sessions": 1, "page_views": 2},
        {"value": "Android", "sessions": 1, "page_views": 1},
        {"value": "Windows", "sessions": 1, "page_views": 0},
    ]


def test_top_pages(worker: Worker, data: Dataset) -> None:
    body = get(worker, "pages", **data.range_params())
    assert body["pages"] == [
        {"page_url": HOME, "page_views": 4, "sessions": 3},
        {"page_url": PRICING, "page_views": 2, "sessions": 2},
        {"page_url": DOCS, "page_views": 1, "sessions": 1},
    ]
    limited = get(worker, "pages", **data.range_params(limit="1"))
    assert [p["page_url"] for p in limited["pages"]] == [HOME]


def test_top_referrers_leave_out_internal_and_direct(worker: Worker, data: Dataset) -> None:
    body = get(worker, "referrers", **data.range_params())
    assert body["referrers"] == [
        {"referrer": "google.com", "page_views": 3, "sessions": 2},
        {"referrer": "news.ycombinator.com", "page_views": 1, "sessions": 1},
    ]


@pytest.mark.parametrize(
    ("by", "rows"),
    [
        (
            "device_type",
            [("desktop", 2, 5), ("mobile", 2, 2)],
        ),
        ("os", [("Mac", 1, 3), ("Windows", 1, 2), ("Android", 1, 1), ("iOS", 1, 1)]),
        ("browser", [("Safari", 2, 4), ("Chrome", 2, 3)]),
        ("country", [(None, 4, 7)]),  # no GeoIP database in tests
    ],
)
def test_breakdowns(
    worker: Worker, data: Dataset, by: str, rows: list[tuple[str | None, int, int]]
) -> None:
    body = get(worker, "breakdown", **data.range_params(by=by))
    assert body["by"] == by
    assert body["rows"] == [{"value": v, "sessions": s, "page_views": p} for v, s, p in rows]


def test_sessions(worker: Worker, data: Dataset) -> None:
    body = get(worker, "sessions", **data.range_params())
    durations = [6 * MINUTE, 2 * MINUTE, 5 * MINUTE, 0]
    assert {k: v for k, v in body.items() if k != "range"} == {
        "sessions": 4,
        "page_views": 7,
        "bounces": 2,
        "pages_per_session": 7 / 4,
        "bounce_rate": 0.5,
        "avg_duration_ms": sum(durations) / 4,
    }


def test_filters(worker: Worker, data: Dataset) -> None:
    mac = get(worker, "traffic", **data.range_params(os="Mac", interval="hour"))
    assert mac["totals"] == {"page_views": 3, "sessions": 1, "users": 1}
    assert mac["range"]["filters"] == {"os": "Mac"}
    pricing = get(worker, "pages", **data.range_params(page_url=PRICING))
    assert pricing["pages"] == [{"page_url": PRICING, "page_views": 2, "sessions": 2}]
    mobile = get(worker, "sessions", **data.range_params(device_type="mobile"))
    assert (mobile["sessions"], mobile["bounces"], mobile["page_views"]) == (2, 2, 2)
    safari_chrome = get(worker, "traffic", **data.range_params(browser="Safari", os="Windows"))
    assert safari_chrome["totals"] == {"page_views": 0, "sessions": 0, "users": 0}
    hostile = get(worker, "pages", **data.range_params(page_url="x' OR '1'='1"))
    assert hostile["pages"] == []


def test_error_groups(worker: Worker, data: Dataset) -> None:
    body = get(worker, "errors", **data.range_params())
    assert (body["total_errors"], body["total_groups"]) == (3, 2)
    first, second = body["groups"]
    h0, m = data.h0, MINUTE
    assert len(first["fingerprint"]) == 16
    assert {k: v for k, v in first.items() if k != "fingerprint"} == {
        "name": None,
        "message": E1_MESSAGE,
        "source": E1_SOURCE,
        "line": 42,
        "count": 2,
        "sessions": 2,
        "first_seen": h0 + 7 * m,
        "last_seen": h0 + 66 * m,
        "sample_stack": "TypeError: Cannot read property 'x'\n    at latest (app.js:42:15)",
    }
    assert {k: v for k, v in second.items() if k != "fingerprint"} == {
        "name": "TypeError",
        "message": E2_MESSAGE,
        "source": E1_SOURCE,
        "line": 7,
        "count": 1,
        "sessions": 1,
        "first_seen": h0 + 67 * m,
        "last_seen": h0 + 67 * m,
        "sample_stack": "TypeError: x is not a function\n    at main (app.js:7:3)",
    }


def test_error_drill_down(worker: Worker, data: Dataset) -> None:
    groups = get(worker, "errors", **data.range_params())["groups"]
    fingerprint = groups[0]["fingerprint"]
    body = get(worker, "errors/detail", **data.range_params(fingerprint=fingerprint))
    assert body["group"] == groups[0]
    occurrences = body["occurrences"]
    assert [o["timestamp"] for o in occurrences] == [data.h0 + 66 * MINUTE, data.h0 + 7 * MINUTE]
    expected_ids = [
        e["eventId"] for e in data.tenant_a if e["eventType"] == "error" and "line" not in e
    ]
    assert sorted(o["event_id"] for o in occurrences) == sorted(expected_ids)
    assert occurrences[0]["stack"].endswith("at latest (app.js:42:15)")
    assert (occurrences[0]["browser"], occurrences[0]["os"], occurrences[0]["col"]) == (
        "Chrome",
        "Android",
        15,
    )
    # The second shape's group: its name comes from the occurrence, as in the list.
    named = get(worker, "errors/detail", **data.range_params(fingerprint=groups[1]["fingerprint"]))
    assert named["group"] == groups[1]
    assert named["group"]["name"] == "TypeError"
    missing = get(worker, "errors/detail", **data.range_params(fingerprint="0" * 16))
    assert missing == {"range": missing["range"], "group": None, "occurrences": []}


def test_performance_percentiles(worker: Worker, data: Dataset) -> None:
    body = get(worker, "performance", **data.range_params())
    assert body["overall"] == {
        "samples": 4,
        "load_time": percentiles([1000, 2000, 3000, 500]),
        "dom_content_loaded": percentiles([400, 800, 1200, 200]),
    }
    assert body["overall"]["load_time"] == pytest.approx({"p50": 1500, "p75": 2250, "p95": 2850})
    assert body["pages"] == [
        {
            "page_url": HOME,
            "samples": 2,
            "load_time": percentiles([1000, 3000]),
            "dom_content_loaded": percentiles([400, 1200]),
        },
        {
            "page_url": DOCS,
            "samples": 1,
            "load_time": percentiles([500]),
            "dom_content_loaded": percentiles([200]),
        },
        {
            "page_url": PRICING,
            "samples": 1,
            "load_time": percentiles([2000]),
            "dom_content_loaded": percentiles([800]),
        },
    ]


def test_ingestion_health(stack: tuple[Worker, Dataset, int]) -> None:
    worker, data, stored = stack
    body = get(worker, "health", minutes="60")
    tenant = body["tenant"]
    assert tenant["events"] == len(data.tenant_a) == 15
    assert len(tenant["events_per_minute"]) == 60
    assert sum(p["events"] for p in tenant["events_per_minute"]) == 15
    assert tenant["lag_ms"]["avg"] is not None and tenant["lag_ms"]["avg"] >= 0
    assert tenant["last_inserted_at"] <= body["window"]["to"]
    worker_health = body["worker"]
    assert worker_health["dead_lettered"] == {"missing_field": 1}
    assert worker_health["dead_lettered_total"] == 1
    assert worker_health["sink_buffered_rows"] == 0
    assert worker_health["rows_inserted"] == stored
    assert get(worker, "health", SECRET_B)["tenant"]["events"] == len(data.tenant_b)


def test_tenant_isolation(worker: Worker, data: Dataset) -> None:
    params = data.range_params()
    b_traffic = get(worker, "traffic", SECRET_B, **params)
    assert b_traffic["totals"] == {"page_views": 2, "sessions": 1, "users": 1}
    b_pages = get(worker, "pages", SECRET_B, **params)["pages"]
    assert {p["page_url"] for p in b_pages} == {
        "https://b.example/",
        "https://b.example/secret-page",
    }
    assert [g["message"] for g in get(worker, "errors", SECRET_B, **params)["groups"]] == ["B only"]
    assert get(worker, "performance", SECRET_B, **params)["overall"]["samples"] == 1
    # A sees nothing of B, and B cannot drill into A's error group.
    a_pages = get(worker, "pages", SECRET_A, **params)["pages"]
    assert all(p["page_url"].startswith(SITE) for p in a_pages)
    a_group = get(worker, "errors", SECRET_A, **params)["groups"][0]["fingerprint"]
    b_detail = get(worker, "errors/detail", SECRET_B, **params, fingerprint=a_group)
    assert b_detail["group"] is None and b_detail["occurrences"] == []
    for by, only in (("os", "Windows"), ("browser", "Chrome")):
        rows = get(worker, "breakdown", SECRET_B, **params, by=by)["rows"]
        assert rows == [{"value": only, "sessions": 1, "page_views": 2}]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {SECRET_A}"},
        {"Authorization": f"Bearer {TENANT_A}"},  # the public ingest key
        {"Authorization": f"Bearer {TENANT_B}"},
        {"X-TrackFlow-Key": TENANT_A},
    ],
)
def test_reads_need_a_read_secret(worker: Worker, headers: dict[str, str]) -> None:
    for path in ("traffic", "pages", "errors", "errors/detail", "health"):
        response = httpx.get(f"{worker.base_url}/v1/stats/{path}", headers=headers, timeout=30)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("traffic", {"from": "yesterday"}, "from must be"),
        ("traffic", {"from": "2026-01-02", "to": "2026-01-01"}, "earlier than"),
        ("traffic", {"from": "2020-01-01", "to": "2021-06-01"}, "400 days"),
        ("traffic", {"from": "1700000000", "to": "1700003600"}, "milliseconds"),
        ("traffic", {"interval": "week"}, "interval"),
        ("traffic", {"from": "2026-01-01", "to": "2026-01-05", "interval": "minute"}, "buckets"),
        ("pages", {"limit": "1000"}, "limit"),
        ("pages", {"pageurl": "x"}, "unknown parameter"),
        ("breakdown", {"by": "tenant_id"}, "by must be"),
        ("breakdown", {}, "by must be"),
        ("errors/detail", {"fingerprint": "zz"}, "fingerprint"),
        ("health", {"minutes": "100000"}, "minutes"),
    ],
)
def test_bad_requests_are_400_with_a_message(
    worker: Worker, path: str, params: dict[str, str], message: str
) -> None:
    response = stats(worker, path, SECRET_A, **params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "bad_request"
    assert message in body["message"]


def test_repeated_parameter_is_400(worker: Worker) -> None:
    response = httpx.get(
        f"{worker.base_url}/v1/stats/pages?os=Mac&os=Linux",
        headers={"Authorization": f"Bearer {SECRET_A}"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "more than once" in response.json()["message"]


def test_session_event_stream_is_unchanged(worker: Worker, data: Dataset) -> None:
    """GET /v1/query/events keeps its contract next to the new API (each event once)."""
    session, events = next(iter(data.sessions.items()))
    rows = worker.session_events(session)
    assert [r["event_id"] for r in rows] == [e["eventId"] for e in events]
    assert len(events) >= 2
    whole = worker.read("/v1/query/events", session_id=session, limit=str(len(events))).json()
    assert (len(whole["events"]), whole["truncated"]) == (len(events), False)
    cut = worker.read("/v1/query/events", session_id=session, limit=str(len(events) - 1)).json()
    assert [r["event_id"] for r in cut["events"]] == [e["eventId"] for e in events[:-1]]
    assert cut["truncated"] is True


def test_dashboard_is_served_without_external_resources(worker: Worker) -> None:
    page = httpx.get(f"{worker.base_url}/dashboard", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for asset, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        response = httpx.get(f"{worker.base_url}/dashboard/{asset}", timeout=30)
        assert response.status_code == 200 and kind in response.headers["Content-Type"]
        text = response.text.replace("http://www.w3.org/2000/svg", "")  # a namespace, not a fetch
        assert "http://" not in text and "https://" not in text
    assert "https://" not in page.text and "http://" not in page.text
    assert httpx.get(f"{worker.base_url}/dashboard/..%2Fquery.py", timeout=30).status_code == 404
    assert httpx.get(f"{worker.base_url}/dashboard/e2e", timeout=30).status_code == 404
