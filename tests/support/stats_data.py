"""A small, fully known data set for the read API and dashboard tests, and a worker to hold it.

Tenant A: four sessions over three hours (7 page views, 3 errors in 2 groups, 4 performance
samples), with one session's batch delivered twice in separate inserts; tenant B: one session.
The expected figures below are worked out by hand from these events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.stack import Broker, Worker
from tests.support.processes import wait_until

HOUR = 3_600_000
MINUTE = 60_000
SITE = "https://shop.example"
TENANT_A, SECRET_A = "tenant-a", "secret-a"
TENANT_B, SECRET_B = "tenant-b", "secret-b"

E1_MESSAGE = "Cannot read property 'x' of undefined"
E1_SOURCE = f"{SITE}/app.js"
E2_MESSAGE = "x is not a function"

DESKTOP_WIN_CHROME = {"deviceType": "desktop", "os": "Windows", "browser": "Chrome"}
MOBILE_ANDROID_CHROME = {"deviceType": "mobile", "os": "Android", "browser": "Chrome"}
DESKTOP_MAC_SAFARI = {"deviceType": "desktop", "os": "Mac", "browser": "Safari"}
MOBILE_IOS_SAFARI = {"deviceType": "mobile", "os": "iOS", "browser": "Safari"}


def event(
    kind: str,
    tenant: str,
    session: str,
    ts: int,
    page: str,
    *,
    user: str | None,
    referrer: str | None,
    device: dict[str, str],
    properties: dict[str, Any] | None = None,
    **top_level: Any,
) -> dict[str, Any]:
    default_properties: dict[str, Any] = {
        "page_view": {"title": "Shop"},
        "click": {"tag": "BUTTON", "id": "buy"},
    }.get(kind, {})
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": kind,
        "timestamp": ts,
        "tenantId": tenant,
        "sessionId": session,
        "userId": user,
        "pageUrl": page,
        "referrer": referrer,
        "deviceInfo": device,
        "properties": properties if properties is not None else default_properties,
        **top_level,
    }


def perf(load: int, dcl: int) -> dict[str, int]:
    return {"loadTime": load, "domContentLoaded": dcl}


def error_props(stack: str) -> dict[str, Any]:
    return {"message": E1_MESSAGE, "source": E1_SOURCE, "line": 42, "col": 15, "stack": stack}


@dataclass
class Dataset:
    h0: int  # start of the first hour bucket (UTC-aligned)
    sessions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tenant_b: list[dict[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.h0

    @property
    def end(self) -> int:
        return self.h0 + 3 * HOUR

    @property
    def tenant_a(self) -> list[dict[str, Any]]:
        return [e for events in self.sessions.values() for e in events]

    def range_params(self, **extra: str) -> dict[str, str]:
        return {"from": str(self.start), "to": str(self.end), **extra}


def build_dataset(now_ms: int | None = None) -> Dataset:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    h0 = (now // HOUR - 3) * HOUR
    tag = uuid.uuid4().hex[:6]
    s1, s2, s3, s4, sb = (f"{name}-{tag}" for name in ("s1", "s2", "s3", "s4", "sb"))
    home, pricing, docs = f"{SITE}/", f"{SITE}/pricing", f"{SITE}/docs"
    stack_first = "TypeError: Cannot read property 'x'\n    at first (app.js:42:15)"
    stack_latest = "TypeError: Cannot read property 'x'\n    at latest (app.js:42:15)"
    data = Dataset(h0)

    def at(minutes: float) -> int:
        return h0 + int(minutes * MINUTE)

    def session_of(
        tenant: str, session: str, user: str | None, referrer: str | None, device: dict[str, str]
    ) -> Any:
        def make(kind: str, minutes: float, page: str, **extra: Any) -> dict[str, Any]:
            return event(
                kind,
                tenant,
                session,
                at(minutes),
                page,
                user=user,
                referrer=referrer,
                device=device,
                **extra,
            )

        return make

    e = session_of(TENANT_A, s1, "u1", "https://google.com/search?q=shop", DESKTOP_WIN_CHROME)
    data.sessions[s1] = [
        e("page_view", 1, home),
        e("performance", 1 + 1 / 60, home, properties=perf(1000, 400)),
        e("page_view", 5, pricing),
        e("performance", 5 + 1 / 60, pricing, properties=perf(2000, 800)),
        e("click", 6, pricing),
        e("error", 7, pricing, properties=error_props(stack_first)),
    ]
    e = session_of(
        TENANT_A, s2, None, "https://news.ycombinator.com/item?id=1", MOBILE_ANDROID_CHROME
    )
    data.sessions[s2] = [
        e("page_view", 65, home),
        e("performance", 65 + 2 / 60, home, properties=perf(3000, 1200)),
        e("error", 66, home, properties=error_props(stack_latest)),
        # The seed's second error shape: fields at the top level.
        e(
            "error",
            67,
            home,
            properties={},
            name="TypeError",
            message=E2_MESSAGE,
            stack="TypeError: x is not a function\n    at main (app.js:7:3)",
            source=E1_SOURCE,
            line=7,
            col=3,
        ),
    ]
    e = session_of(TENANT_A, s3, "u2", f"{SITE}/", DESKTOP_MAC_SAFARI)  # an internal referrer
    data.sessions[s3] = [
        e("page_view", 130, home),
        e("page_view", 131, docs),
        e("performance", 131 + 1 / 60, docs, properties=perf(500, 200)),
        e("page_view", 135, home),
    ]
    e = session_of(TENANT_A, s4, "u1", "https://google.com/", MOBILE_IOS_SAFARI)
    data.sessions[s4] = [e("page_view", 140, pricing)]

    e = session_of(TENANT_B, sb, "ub", "https://bing.com/", DESKTOP_WIN_CHROME)
    b_error = {"message": "B only", "source": "https://b.example/b.js", "line": 1, "col": 1}
    data.tenant_b = [
        e("page_view", 10, "https://b.example/"),
        e("page_view", 12, "https://b.example/secret-page"),
        e("error", 13, "https://b.example/", properties={**b_error, "stack": "Error: B only"}),
        e("performance", 12.5, "https://b.example/", properties=perf(9000, 9000)),
    ]
    return data


def percentile(values: list[float], level: float) -> float:
    """Linear interpolation between closest ranks (ClickHouse quantileExactInclusive, numpy)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * level
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def percentiles(values: list[float]) -> dict[str, float]:
    return {
        name: percentile(values, level)
        for name, level in (("p50", 0.5), ("p75", 0.75), ("p95", 0.95))
    }


# -- worker holding the data set -----------------------------------------------------------------
def stats(worker: Worker, path: str, secret: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{worker.base_url}/v1/stats/{path}",
        params=params,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=60,
    )


def ingest(worker: Worker, data: Dataset) -> int:
    """Send the data set (tenant A's first session twice, in separate inserts) and one bad event;
    return once every row is stored. Returns the number of rows inserted."""
    sessions = list(data.sessions.values())
    first, rest = sessions[0], [e for events in sessions[1:] for e in events]
    bad = {**rest[0], "eventId": str(uuid.uuid4())}
    del bad["deviceInfo"]  # dead-lettered: missing_field
    for body, key in (
        ({"events": first}, TENANT_A),
        ({"events": [*rest, bad]}, TENANT_A),
        ({"events": data.tenant_b}, TENANT_B),
    ):
        response = worker.post(body, headers={"X-TrackFlow-Key": key})
        assert response.status_code == 202, response.text
    stored = len(data.tenant_a) + len(data.tenant_b)
    wait_until(
        lambda: worker.metric("trackflow_rows_inserted_total") >= stored, 60, "first delivery"
    )
    # The replay of session 1 (same eventIds) lands in a later insert: two rows per event until
    # the table merges them, so every figure below depends on counting event ids once.
    response = worker.post({"events": first}, headers={"X-TrackFlow-Key": TENANT_A})
    assert response.status_code == 202, response.text
    stored += len(first)
    wait_until(lambda: worker.metric("trackflow_rows_inserted_total") >= stored, 60, "replay")
    wait_until(
        lambda: worker.metric("trackflow_events_dead_lettered_total") >= 1, 30, "dead letter"
    )
    return stored


def start_stats_worker(broker: Broker, workdir: Path) -> Worker:
    return Worker(
        broker=broker,
        workdir=workdir,
        api_key=TENANT_A,
        read_secret=SECRET_A,
        overrides={
            "TRACKFLOW_API_KEYS": f"{TENANT_A},{TENANT_B}",
            "TRACKFLOW_READ_KEYS": f"{TENANT_A}:{SECRET_A},{TENANT_B}:{SECRET_B}",
        },
    ).start()


def stats_worker(broker: Broker, workdir: Path) -> Iterator[tuple[Worker, Dataset, int]]:
    worker = start_stats_worker(broker, workdir)
    try:
        data = build_dataset()
        stored = ingest(worker, data)
        yield worker, data, stored
    finally:
        worker.stop()
