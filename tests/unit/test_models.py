"""The pydantic shapes of schemas.events, exercised directly through their validators."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.events import (
    BASE_EVENT,
    ERROR_TOP_LEVEL,
    EVENT_TYPES,
    MAX_DURATION_MS,
    MAX_LINE,
    PROPERTY_MODELS,
    PROPERTY_SHAPES,
    ClickProperties,
    Envelope,
    ErrorProperties,
    PageViewProperties,
    PerformanceProperties,
)
from tests.unit.factories import build


def test_property_models_cover_exactly_the_four_seed_types() -> None:
    assert set(PROPERTY_MODELS) == {"page_view", "click", "error", "performance"}
    assert set(EVENT_TYPES) == set(PROPERTY_MODELS)
    assert PROPERTY_MODELS["page_view"] is PageViewProperties
    assert PROPERTY_MODELS["click"] is ClickProperties
    assert PROPERTY_MODELS["error"] is ErrorProperties
    assert PROPERTY_MODELS["performance"] is PerformanceProperties
    assert set(PROPERTY_SHAPES) == set(PROPERTY_MODELS)


@pytest.mark.parametrize("kind", ["page_view", "click", "error_in_properties", "performance"])
def test_seed_examples_validate_as_base_and_typed_properties(kind: str) -> None:
    event = build(kind)
    base = BASE_EVENT.validate_python(event)
    assert base["eventType"] == event["eventType"]
    assert base["eventId"] == event["eventId"]
    assert base["deviceInfo"] == {"deviceType": "desktop", "os": "Windows", "browser": "Chrome"}
    props = PROPERTY_SHAPES[base["eventType"]].validate_python(event["properties"])
    assert props == event["properties"]


def test_error_top_level_shape_validates() -> None:
    event = build("error_top_level")
    top = ERROR_TOP_LEVEL.validate_python(event)
    assert (top["name"], top["message"], top.get("line"), top.get("col")) == (
        "TypeError",
        "x is not a function",
        7,
        3,
    )


def test_error_top_level_optional_fields_may_be_absent() -> None:
    assert ERROR_TOP_LEVEL.validate_python({"name": "E", "message": "m"}) == {
        "name": "E",
        "message": "m",
    }


@pytest.mark.parametrize(
    "sent",
    [
        "550E8400-E29B-41D4-A716-446655440000",
        "{550e8400-e29b-41d4-a716-446655440000}",
        "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
        "550e8400e29b41d4a716446655440000",
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_event_id_is_canonicalized(sent: str) -> None:
    event = build("page_view", ts=1625539200000)
    event["eventId"] = sent
    assert BASE_EVENT.validate_python(event)["eventId"] == "550e8400-e29b-41d4-a716-446655440000"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-uuid",
        "550e8400-e29b-41d4-a716-44665544000",
        "g" * 32,
        "550e8400-e29b-41d4-a716-446655440000\n",
        "550e8400-e29b-41d4-a716-4466554400000",
    ],
)
def test_non_uuid_event_id_rejected(bad: str) -> None:
    event = build("page_view")
    event["eventId"] = bad
    with pytest.raises(ValidationError):
        BASE_EVENT.validate_python(event)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_timestamp_rejected(value: float) -> None:
    event = build("page_view")
    event["timestamp"] = value
    with pytest.raises(ValidationError):
        BASE_EVENT.validate_python(event)


@pytest.mark.parametrize("field", ["loadTime", "domContentLoaded"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, -0.5, MAX_DURATION_MS + 1])
def test_performance_rejects_non_finite_negative_and_huge(field: str, value: float) -> None:
    props = {"loadTime": 2450, "domContentLoaded": 1200, field: value}
    with pytest.raises(ValidationError):
        PROPERTY_SHAPES["performance"].validate_python(props)


def test_performance_keeps_ints_as_ints_and_floats_as_floats() -> None:
    performance = PROPERTY_SHAPES["performance"]
    props = performance.validate_python({"loadTime": 2450, "domContentLoaded": 12.5})
    assert type(props["loadTime"]) is int
    assert props["domContentLoaded"] == 12.5


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -5])
def test_envelope_sent_at_must_be_finite_and_positive(value: float) -> None:
    with pytest.raises(ValidationError):
        Envelope.model_validate({"events": [], "sentAt": value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", True),
        ("timestamp", "1625539200000"),
        ("tenantId", 1),
        ("sessionId", 1),
        ("userId", False),
        ("pageUrl", ["https://example.com"]),
        ("referrer", {"href": "x"}),
        ("deviceInfo", "desktop"),
        ("seq", True),
        ("seq", 1.0),
        ("seq", 2**32),
        ("seq", -1),
    ],
)
def test_base_event_is_strict(field: str, value: object) -> None:
    event = build("page_view")
    event[field] = value
    with pytest.raises(ValidationError):
        BASE_EVENT.validate_python(event)


@pytest.mark.parametrize("value", [True, "42", 4.2, -1, MAX_LINE + 1])
def test_line_numbers_are_non_negative_ints(value: object) -> None:
    props = {**build("error_in_properties")["properties"], "line": value}
    with pytest.raises(ValidationError):
        PROPERTY_SHAPES["error"].validate_python(props)


def test_keys_beyond_a_shape_are_left_out_of_its_result() -> None:
    event = {**build("page_view"), "extra": 1}
    base = BASE_EVENT.validate_python(event)
    assert "properties" not in base
    assert "extra" not in base
    click = PROPERTY_SHAPES["click"].validate_python({"tag": "A", "id": None, "href": "/x"})
    assert click == {"tag": "A", "id": None}


def test_every_dead_letter_reason_in_the_code_is_in_the_closed_set() -> None:
    import re
    from pathlib import Path

    from schemas.records import DEAD_LETTER_REASONS

    root = Path(__file__).resolve().parents[2]
    used: set[str] = set()
    for folder in ("agents", "web", "trackflow_app"):
        for path in (root / folder).glob("*.py"):
            text = path.read_text()
            used |= set(
                re.findall(r'(?:Rejection|dead_letter|BudgetExceeded)\(\s*"([a-z_]+)"', text)
            )
    assert used, "no dead-letter reasons found in the code"
    assert used <= set(DEAD_LETTER_REASONS), used - set(DEAD_LETTER_REASONS)
