"""Property-based tests (hypothesis) for the validate stage, sanitizing and the edge."""

from __future__ import annotations

import copy
import gzip
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.sanitize import MAX_NESTING, clean_json, clean_text
from agents.validate import clock_offset_ms, process_batch
from tests.support.strategies import json_values
from tests.unit.factories import BUILDERS, SESSION, TENANT, make_batch, policy
from web.edge import EdgeError, gunzip_bounded

POLICY = policy()
SAFE_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FAST = settings(
    max_examples=120, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

BASE_KEYS = [
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
    "seq",
    "name",
    "message",
    "line",
]


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """A valid seed event with a few fields replaced by arbitrary JSON or removed."""
    event = BUILDERS[draw(st.sampled_from(sorted(BUILDERS)))](TENANT, SESSION)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        key = draw(st.sampled_from(BASE_KEYS))
        target = event
        if key == "properties" and isinstance(event.get("properties"), dict):
            target = event["properties"]
            key = draw(st.sampled_from([*target, "extra"])) if target else "extra"
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return event


any_event = (
    json_values
    | mutated_events()
    | st.sampled_from(sorted(BUILDERS)).map(lambda kind: BUILDERS[kind](TENANT, SESSION))
)


@FAST
@given(st.lists(any_event, max_size=6), st.none() | st.floats(min_value=1, max_value=4e12))
def test_process_batch_never_raises_and_partitions_events(
    events: list[Any], sent_at: float | None
) -> None:
    snapshot = copy.deepcopy(events)
    received = 1_700_000_000_000
    outcome = process_batch(make_batch(events, received_at=received, sent_at=sent_at), POLICY)
    singles = [
        process_batch(make_batch([event], received_at=received, sent_at=sent_at), POLICY)
        for event in events
    ]
    # Every input lands in exactly one list, and the batch result is the in-order concatenation.
    assert all(len(s.processed) + len(s.rejected) == 1 for s in singles)
    assert len(outcome.processed) + len(outcome.rejected) == len(events)
    assert outcome.processed == [p for s in singles for p in s.processed]
    rejected_inputs = [event for event, s in zip(events, singles, strict=True) if s.rejected]
    assert len(outcome.rejected) == len(rejected_inputs)
    for letter, event in zip(outcome.rejected, rejected_inputs, strict=True):
        assert letter["event"] is event
    for letter in outcome.rejected:
        assert isinstance(letter["reason"], str) and letter["reason"]
    assert events == snapshot


@FAST
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=20))
def test_extra_properties_come_out_safe(extra: dict[str, Any]) -> None:
    event = BUILDERS["page_view"](TENANT, SESSION)
    event["properties"] = {**extra, "title": "T"}
    outcome = process_batch(make_batch([event]), POLICY)
    if outcome.rejected:
        assert outcome.rejected[0]["reason"] == "too_many_properties"
        return
    props = outcome.processed[0]["properties"]
    assert props["title"] == "T"

    def check(value: Any, depth: int) -> None:
        assert depth <= MAX_NESTING
        if isinstance(value, dict):
            for key, inner in value.items():
                assert SAFE_KEY.match(key), key
                check(inner, depth + 1)
        elif isinstance(value, list):
            for inner in value:
                check(inner, depth + 1)
        elif isinstance(value, str):
            assert not CONTROL.search(value)

    check(props, 0)


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_clean_text_properties(value: str, limit: int) -> None:
    cleaned = clean_text(value, limit)
    assert len(cleaned) <= limit
    assert not CONTROL.search(cleaned)
    if not CONTROL.search(value):
        assert cleaned == value[:limit]


@given(json_values)
def test_clean_json_is_idempotent(value: Any) -> None:
    once = clean_json(value, 30)
    assert clean_json(once, 30) == once


@given(
    st.integers(min_value=0, max_value=2**45),
    st.none() | st.integers(min_value=1, max_value=2**45),
    st.integers(min_value=0, max_value=10**7),
)
def test_clock_offset_applied_only_beyond_tolerance(
    received: int, sent: int | None, tolerance: int
) -> None:
    offset = clock_offset_ms(received, sent, tolerance)
    if sent is None or abs(received - sent) <= tolerance:
        assert offset == 0
    else:
        assert offset == received - sent


@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=3000))
def test_gunzip_bounded_round_trip_or_413(data: bytes, limit: int) -> None:
    compressed = gzip.compress(data, compresslevel=1)
    if len(data) <= limit:
        assert gunzip_bounded(compressed, limit) == data
    else:
        try:
            gunzip_bounded(compressed, limit)
        except EdgeError as error:
            assert (error.status, error.code) == (413, "payload_too_large")
        else:
            raise AssertionError("an over-limit body was accepted")
