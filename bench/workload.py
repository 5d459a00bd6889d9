"""Realistic tracker traffic: tens of tenants, thousands of sessions, batches of 1-50 events.

Every batch comes from one browser session (as the tracker sends them): a mix of page views,
clicks, performance events and errors in both of the data contract's shapes (fields under
``properties`` and at the top level), with URL, title, stack and user-agent sizes of real pages.

Bodies are serialized ahead of the clock with a timestamp sentinel; the load generator swaps in
the request's *scheduled* send time (ms) just before sending, so every stored row carries its
scheduled time in ``client_timestamp`` and ``inserted_at - client_timestamp`` is freshness from
the moment the request should have left the client.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

TS_SENTINEL = 9_999_999_999_999
TS_SENTINEL_BYTES = b"9999999999999"
MAX_BATCH = 50
MEAN_BATCH = 10.0

WORDS = [
    "account",
    "analytics",
    "annual",
    "basket",
    "billing",
    "blog",
    "careers",
    "checkout",
    "compare",
    "contact",
    "dashboard",
    "delivery",
    "docs",
    "download",
    "enterprise",
    "faq",
    "features",
    "gallery",
    "guide",
    "help",
    "invoice",
    "jobs",
    "kitchen",
    "login",
    "marketplace",
    "news",
    "offers",
    "orders",
    "partners",
    "pricing",
    "privacy",
    "product",
    "profile",
    "release",
    "reviews",
    "sale",
    "search",
    "security",
    "settings",
    "shipping",
    "shop",
    "signup",
    "sports",
    "store",
    "support",
    "team",
    "terms",
    "travel",
    "tutorials",
    "upgrade",
    "webinar",
    "wishlist",
]
TAGS = ("A", "BUTTON", "BUTTON", "DIV", "SPAN", "IMG", "INPUT", "LI", "svg")
DEVICES = (
    ("desktop", "Windows", "Chrome", 30),
    ("desktop", "Mac", "Safari", 10),
    ("desktop", "Mac", "Chrome", 10),
    ("desktop", "Windows", "Edge", 8),
    ("desktop", "Linux", "Firefox", 4),
    ("mobile", "Android", "Chrome", 20),
    ("mobile", "iOS", "Safari", 16),
    ("mobile", "Android", "Samsung Internet", 2),
)
USER_AGENTS = {
    "Chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Samsung Internet": "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, "
    "like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
}
REFERRERS = (
    "https://www.google.com/",
    "https://www.bing.com/search?q=",
    "https://duckduckgo.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://news.ycombinator.com/item?id=",
)
ERROR_MESSAGES = (
    "Cannot read properties of undefined (reading 'map')",
    "x is not a function",
    "Failed to fetch",
    "ResizeObserver loop completed with undelivered notifications.",
    "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON",
    "NetworkError when attempting to fetch resource.",
)
ERROR_NAMES = ("TypeError", "ReferenceError", "SyntaxError", "Error", "RangeError")


def tenant_keys(count: int, seed: int = 1) -> list[str]:
    """Deterministic public ingest keys, e.g. ``tf_pk_3f2a...``."""
    return [
        "tf_pk_" + hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:20] for i in range(count)
    ]


@dataclass
class Session:
    tenant: str
    site: str
    session_id: str
    user_id: str | None
    device: dict[str, str]
    user_agent: str
    referrer: str | None
    page: str
    client_ip: str
    seq: int = 0


@dataclass(frozen=True)
class Batch:
    body: bytes  # JSON with TS_SENTINEL in place of the send time
    events: int
    content_type: str
    user_agent: str
    client_ip: str  # sent as X-Forwarded-For; the worker trusts 127.0.0.1 as its proxy


class Workload:
    """A deterministic (given the seed) stream of tracker batches; event ids are always fresh."""

    def __init__(self, tenants: list[str], sessions: int = 5000, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.tenants = tenants
        # A few big tenants and a long tail (Zipf-like), as on a shared analytics service.
        self.tenant_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(tenants))]
        self.sites = {t: f"www.{self.rng.choice(WORDS)}-{t[-6:]}.example" for t in tenants}
        self.sessions = [self._new_session() for _ in range(sessions)]

    # -- building blocks -------------------------------------------------------------------
    def _path(self) -> str:
        rng = self.rng
        parts = [rng.choice(WORDS) for _ in range(rng.randint(1, 3))]
        slug = "-".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
        path = "/" + "/".join([*parts, slug])
        if rng.random() < 0.35:
            path += (
                f"?utm_source={rng.choice(('google', 'newsletter', 'twitter', 'partner'))}"
                f"&utm_medium=cpc&utm_campaign={rng.choice(WORDS)}-{rng.randint(2020, 2025)}"
                f"&gclid={os.urandom(12).hex()}"
            )
        return path

    def _new_session(self) -> Session:
        rng = self.rng
        tenant = rng.choices(self.tenants, self.tenant_weights)[0]
        device_type, os_name, browser, _ = rng.choices(DEVICES, [d[3] for d in DEVICES])[0]
        site = self.sites[tenant]
        referrer = rng.choice(REFERRERS) if rng.random() < 0.6 else None
        if referrer and referrer.endswith("="):
            referrer += rng.choice(WORDS) + "+" + rng.choice(WORDS)
        return Session(
            tenant=tenant,
            site=site,
            session_id=f"s_{os.urandom(8).hex()}",
            user_id=f"u_{rng.randint(1, 10**7)}" if rng.random() < 0.4 else None,
            device={"deviceType": device_type, "os": os_name, "browser": browser},
            user_agent=USER_AGENTS[browser],
            referrer=referrer,
            page=f"https://{site}{self._path()}",
            # 198.18.0.0/15 (RFC 2544, benchmarking): only ever a header value here.
            client_ip=f"198.{rng.randint(18, 19)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        )

    def _base(self, s: Session, event_type: str) -> dict[str, Any]:
        s.seq += 1
        return {
            "eventId": str(uuid.UUID(bytes=os.urandom(16), version=4)),
            "eventType": event_type,
            "timestamp": TS_SENTINEL,
            "tenantId": s.tenant,
            "sessionId": s.session_id,
            "userId": s.user_id,
            "pageUrl": s.page,
            "referrer": s.referrer,
            "deviceInfo": s.device,
            "seq": s.seq,
        }

    def _title(self) -> str:
        words = [self.rng.choice(WORDS).capitalize() for _ in range(self.rng.randint(2, 9))]
        return " ".join(words) + " | " + self.rng.choice(("Shop", "Docs", "Blog", "Store"))

    def _stack(self, s: Session, message: str, name: str) -> str:
        frames = [
            f"    at {self.rng.choice(WORDS)}{self.rng.choice(('Handler', 'Effect', 'Render', ''))}"
            f" (https://{s.site}/static/js/{self.rng.choice(WORDS)}.{os.urandom(4).hex()}.js:"
            f"{self.rng.randint(1, 9000)}:{self.rng.randint(1, 300)})"
            for _ in range(self.rng.randint(3, 18))
        ]
        return f"{name}: {message}\n" + "\n".join(frames)

    def event(self, s: Session) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.30:
            if rng.random() < 0.5:  # navigation
                s.page = f"https://{s.site}{self._path()}"
            e = self._base(s, "page_view")
            e["properties"] = {"title": self._title()}
        elif roll < 0.86:
            e = self._base(s, "click")
            props: dict[str, Any] = {
                "tag": rng.choice(TAGS),
                "id": f"{rng.choice(WORDS)}-{rng.choice(WORDS)}" if rng.random() < 0.6 else None,
            }
            if rng.random() < 0.3:
                props["text"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
            e["properties"] = props
        elif roll < 0.96:
            e = self._base(s, "performance")
            load = rng.randint(300, 9000)
            props = {"loadTime": load, "domContentLoaded": rng.randint(100, load)}
            if rng.random() < 0.5:
                props["ttfb"] = rng.randint(20, 900)
            e["properties"] = props
        else:
            message = rng.choice(ERROR_MESSAGES)
            name = rng.choice(ERROR_NAMES)
            source = f"https://{s.site}/static/js/main.{os.urandom(4).hex()}.js"
            stack = self._stack(s, message, name) if rng.random() < 0.85 else None
            e = self._base(s, "error")
            if rng.random() < 0.5:  # shape 1: everything under properties
                e["properties"] = {
                    "message": message,
                    "source": source,
                    "line": rng.randint(1, 9000),
                    "col": rng.randint(1, 300),
                    "stack": stack,
                }
            else:  # shape 2: fields at the top level
                e.update(
                    name=name,
                    message=message,
                    stack=stack,
                    source=source,
                    line=rng.randint(1, 9000),
                    col=rng.randint(1, 300),
                    properties={},
                )
        return e

    def batch_size(self) -> int:
        return min(MAX_BATCH, int(self.rng.expovariate(1.0 / (MEAN_BATCH - 0.5))) + 1)

    def batch_events(self) -> tuple[Session, list[dict[str, Any]]]:
        index = self.rng.randrange(len(self.sessions))
        s = self.sessions[index]
        if self.rng.random() < 0.02:  # sessions end; new ones start
            s = self.sessions[index] = self._new_session()
        return s, [self.event(s) for _ in range(self.batch_size())]

    def batch(self) -> Batch:
        s, events = self.batch_events()
        body = orjson.dumps({"events": events, "sentAt": TS_SENTINEL})
        content_type = "application/json" if self.rng.random() < 0.7 else "text/plain;charset=UTF-8"
        return Batch(body, len(events), content_type, s.user_agent, s.client_ip)

    def batches(self, events: int) -> list[Batch]:
        """Batches holding at least ``events`` events in total."""
        out: list[Batch] = []
        total = 0
        while total < events:
            b = self.batch()
            out.append(b)
            total += b.events
        return out

    def iter_events(self, count: int) -> Iterator[tuple[Session, dict[str, Any]]]:
        """Single events (for the Kafka baseline), same mix and sizes."""
        made = 0
        while made < count:
            s, events = self.batch_events()
            for e in events:
                yield s, e
            made += len(events)


def stamp(body: bytes, ms: int) -> bytes:
    return body.replace(TS_SENTINEL_BYTES, b"%d" % ms)


def raw_batches(tenants: list[str], count: int, now_ms: int) -> Iterator[dict[str, Any]]:
    """The benchmark's batches as the edge writes them to the raw topic (agents.validate's
    input), about ``count`` events in all, received at ``now_ms`` from 127.0.0.1."""
    for batch in Workload(tenants, 5000, seed=11).batches(count):
        envelope = orjson.loads(stamp(batch.body, now_ms))
        yield {
            "v": 1,
            "api_key": envelope["events"][0]["tenantId"],
            "received_at": now_ms,
            "ip": "127.0.0.1",
            "user_agent": batch.user_agent,
            "sent_at": envelope["sentAt"],
            "dropped": None,
            "events": envelope["events"],
        }
