"""Server-side enrichment: clock_offset_ms and the injected GeoIP lookup."""

from __future__ import annotations

import time

import pytest

from agents.validate import GeoInfo, clock_offset_ms, process_batch, validate_event
from tests.unit.factories import build, make_batch, policy

POLICY = policy()


@pytest.mark.parametrize(
    ("received", "sent", "tolerance", "expected"),
    [
        (10_000_000, None, 60_000, 0),
        (10_000_000, 10_000_000, 0, 0),
        (10_000_000, 9_940_000, 60_000, 0),  # exactly the tolerance: read as transit
        (10_000_000, 9_939_999, 60_000, 60_001),
        (10_000_000, 10_060_000, 60_000, 0),
        (10_000_000, 10_060_001, 60_000, -60_001),
        (10_000_000, 9_999_000.9, 0, 1_000),  # float sentAt is truncated
        (10_000_000, 2_800_000.0, 60_000, 7_200_000),
    ],
)
def test_clock_offset_ms(received: int, sent: float | None, tolerance: int, expected: int) -> None:
    assert clock_offset_ms(received, sent, tolerance) == expected


class FakeGeo:
    def __init__(self, answer: GeoInfo | None) -> None:
        self.answer = answer
        self.calls: list[str] = []

    def __call__(self, ip: str) -> GeoInfo | None:
        self.calls.append(ip)
        return self.answer


def test_geo_lookup_fills_country_region_city() -> None:
    geo = FakeGeo(GeoInfo(country="NZ", region="Auckland", city="Auckland Central"))
    event = build("page_view")
    processed = validate_event(event, make_batch([event], ip="203.0.113.50"), POLICY, geo)
    assert geo.calls == ["203.0.113.50"]
    assert (processed["country"], processed["region"], processed["city"]) == (
        "NZ",
        "Auckland",
        "Auckland Central",
    )
    assert processed["ip_address"] == "203.0.113.50"


def test_geo_lookup_skipped_without_ip() -> None:
    geo = FakeGeo(GeoInfo(country="NZ", region=None, city=None))
    event = build("page_view")
    processed = validate_event(event, make_batch([event], ip=None), POLICY, geo)
    assert geo.calls == []
    assert (processed["country"], processed["region"], processed["city"]) == (None, None, None)


def test_geo_lookup_miss_leaves_nulls() -> None:
    geo = FakeGeo(None)
    event = build("page_view")
    processed = validate_event(event, make_batch([event]), POLICY, geo)
    assert len(geo.calls) == 1
    assert (processed["country"], processed["region"], processed["city"]) == (None, None, None)


def test_no_geo_lookup_leaves_nulls() -> None:
    event = build("page_view")
    processed = validate_event(event, make_batch([event]), POLICY, None)
    assert (processed["country"], processed["region"], processed["city"]) == (None, None, None)


def test_geo_lookup_runs_once_per_batch() -> None:
    geo = FakeGeo(GeoInfo(country="DE", region=None, city=None))
    bad = build("page_view")
    bad["eventType"] = "purchase"
    outcome = process_batch(make_batch([bad, build("click"), build("page_view")]), POLICY, geo)
    assert len(outcome.rejected) == 1
    assert geo.calls == ["203.0.113.7"]
    assert [event["country"] for event in outcome.processed] == ["DE", "DE"]


def test_a_batch_gives_each_event_what_it_would_get_alone() -> None:
    geo = FakeGeo(GeoInfo(country="NZ", region="Auckland", city=None))
    events = [build(kind) for kind in ("page_view", "click", "error_top_level", "performance")]
    received = int(time.time() * 1000)
    # The client's clock an hour behind: every event's timestamp is corrected by the same offset.
    batch = make_batch(events, ip="203.0.113.9", received_at=received, sent_at=received - 3_600_000)
    alone = [validate_event(event, batch, POLICY, geo) for event in events]
    assert [event["timestamp"] - event["client_timestamp"] for event in alone] == [3_600_000] * 4
    assert process_batch(batch, POLICY, geo).processed == alone
