"""Shared builders for the unit tests (batches, policies, nested field edits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.validate import ValidationPolicy
from schemas.records import RawBatch
from tests.support import events as ev

TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"
SESSION = "session-123"
KNOWN_TENANTS = frozenset({TENANT, OTHER_TENANT})

Builder = Callable[..., dict[str, Any]]

BUILDERS: dict[str, Builder] = {
    "page_view": ev.page_view,
    "click": ev.click,
    "error_in_properties": ev.error_in_properties,
    "error_top_level": ev.error_top_level,
    "performance": ev.performance,
}


def policy(**overrides: Any) -> ValidationPolicy:
    return ValidationPolicy(tenant_keys=KNOWN_TENANTS, **overrides)


def make_batch(
    events: list[Any],
    *,
    api_key: str = TENANT,
    received_at: int | None = None,
    sent_at: float | None = None,
    ip: str | None = "203.0.113.7",
    user_agent: str = "Mozilla/5.0 (X11; Linux x86_64)",
) -> RawBatch:
    return {
        "v": 1,
        "api_key": api_key,
        "received_at": received_at if received_at is not None else ev.now_ms(),
        "ip": ip,
        "user_agent": user_agent,
        "sent_at": sent_at,
        "dropped": None,
        "events": events,
    }


def build(kind: str, **kwargs: Any) -> dict[str, Any]:
    return BUILDERS[kind](TENANT, SESSION, **kwargs)


def set_path(event: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    target = event
    for part in parents:
        target = target[part]
    target[leaf] = value
    return event


def del_path(event: dict[str, Any], dotted: str) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    target = event
    for part in parents:
        target = target[part]
    del target[leaf]
    return event
