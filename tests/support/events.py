"""The seed's example events, with fresh ids and current timestamps."""

from __future__ import annotations

import time
import uuid
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


def base_event(event_type: str, tenant: str, session: str, ts: int | None = None) -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": event_type,
        "timestamp": ts if ts is not None else now_ms(),
        "tenantId": tenant,
        "sessionId": session,
        "userId": "user-456",
        "pageUrl": "https://example.com",
        "referrer": "https://google.com",
        "deviceInfo": {"deviceType": "desktop", "os": "Windows", "browser": "Chrome"},
    }


def page_view(tenant: str, session: str, ts: int | None = None) -> dict[str, Any]:
    return {**base_event("page_view", tenant, session, ts), "properties": {"title": "Example Page"}}


def click(tenant: str, session: str, ts: int | None = None) -> dict[str, Any]:
    props = {"tag": "BUTTON", "id": "submit-button"}
    return {**base_event("click", tenant, session, ts), "properties": props}


def error_in_properties(tenant: str, session: str, ts: int | None = None) -> dict[str, Any]:
    props = {
        "message": "Cannot read property 'x' of undefined",
        "source": "https://example.com/app.js",
        "line": 42,
        "col": 15,
        "stack": "TypeError: Cannot read property 'x' of undefined\n"
        "    at doSomething (app.js:42:15)\n"
        "    at HTMLButtonElement.onclick (index.html:10:1)",
    }
    return {**base_event("error", tenant, session, ts), "properties": props}


def error_top_level(tenant: str, session: str, ts: int | None = None) -> dict[str, Any]:
    return {
        **base_event("error", tenant, session, ts),
        "name": "TypeError",
        "message": "x is not a function",
        "stack": "TypeError: x is not a function\n    at main (app.js:7:3)",
        "source": "https://example.com/app.js",
        "line": 7,
        "col": 3,
        "properties": {},
    }


def performance(tenant: str, session: str, ts: int | None = None) -> dict[str, Any]:
    props = {"loadTime": 2450, "domContentLoaded": 1200}
    return {**base_event("performance", tenant, session, ts), "properties": props}


def seed_examples(tenant: str, session: str) -> list[dict[str, Any]]:
    ts = now_ms()
    return [
        page_view(tenant, session, ts),
        click(tenant, session, ts + 1),
        error_in_properties(tenant, session, ts + 2),
        performance(tenant, session, ts + 3),
        error_top_level(tenant, session, ts + 4),
    ]
