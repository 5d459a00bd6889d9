"""agents.validate: process_batch, validate_event and dead letters with machine-readable reasons."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agents.validate import (
    DAY_MS,
    Rejection,
    process_batch,
    validate_event,
)
from tests.support import events as ev
from tests.unit.factories import (
    OTHER_TENANT,
    SESSION,
    TENANT,
    build,
    del_path,
    make_batch,
    policy,
    set_path,
)

POLICY = policy()
ERROR_KEYS = {"name", "message", "source", "line", "col", "stack"}


def reject(event: Any, **batch_kwargs: Any) -> Rejection:
    batch = make_batch([event], **batch_kwargs)
    with pytest.raises(Rejection) as info:
        validate_event(event, batch, POLICY)
    return info.value


def accept(event: Any, pol: Any = POLICY, geo: Any = None, **batch_kwargs: Any) -> Any:
    return validate_event(event, make_batch([event], **batch_kwargs), pol, geo)


# --- valid events -----------------------------------------------------------------------------


def test_all_seed_examples_are_processed_in_order() -> None:
    events = ev.seed_examples(TENANT, SESSION)
    outcome = process_batch(make_batch(events), POLICY)
    assert outcome.rejected == []
    assert [p["event_id"] for p in outcome.processed] == [e["eventId"] for e in events]
    assert [p["event_type"] for p in outcome.processed] == [
        "page_view",
        "click",
        "error",
        "performance",
        "error",
    ]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("page_view", {"title": "Example Page"}),
        ("click", {"tag": "BUTTON", "id": "submit-button"}),
        ("performance", {"loadTime": 2450, "domContentLoaded": 1200}),
    ],
)
def test_typed_properties_are_kept(kind: str, expected: dict[str, Any]) -> None:
    assert accept(build(kind))["properties"] == expected


def test_performance_integers_stay_integers() -> None:
    props = accept(build("performance"))["properties"]
    assert type(props["loadTime"]) is int
    assert type(props["domContentLoaded"]) is int


def test_click_with_null_id_is_valid() -> None:
    event = build("click")
    event["properties"]["id"] = None
    assert accept(event)["properties"]["id"] is None


def test_nullable_user_and_referrer() -> None:
    event = build("page_view")
    event["userId"] = None
    event["referrer"] = None
    processed = accept(event)
    assert processed["user_id"] is None
    assert processed["referrer"] is None


def test_processed_event_fields_are_mapped() -> None:
    event = build("page_view")
    processed = accept(event, ip="198.51.100.4")
    assert processed["event_id"] == event["eventId"]
    assert processed["tenant_id"] == TENANT
    assert processed["session_id"] == SESSION
    assert processed["user_id"] == "user-456"
    assert processed["page_url"] == "https://example.com"
    assert processed["referrer"] == "https://google.com"
    assert (processed["device_type"], processed["os"], processed["browser"]) == (
        "desktop",
        "Windows",
        "Chrome",
    )
    assert processed["ip_address"] == "198.51.100.4"


# --- both error shapes -------------------------------------------------------------------------


def test_both_error_shapes_normalize_to_the_same_keys() -> None:
    shape1 = accept(build("error_in_properties"))["properties"]
    shape2 = accept(build("error_top_level"))["properties"]
    assert set(shape1) == ERROR_KEYS
    assert set(shape2) == ERROR_KEYS
    assert shape1["name"] is None
    assert shape1["message"] == "Cannot read property 'x' of undefined"
    assert (shape1["line"], shape1["col"]) == (42, 15)
    assert shape1["stack"].count("\n") == 2
    assert shape2["name"] == "TypeError"
    assert shape2["message"] == "x is not a function"
    assert (shape2["source"], shape2["line"], shape2["col"]) == ("https://example.com/app.js", 7, 3)
    assert shape2["stack"] == "TypeError: x is not a function\n    at main (app.js:7:3)"


def test_error_top_level_with_only_name_and_message() -> None:
    event = build("error_top_level")
    for key in ("stack", "source", "line", "col"):
        del event[key]
    props = accept(event)["properties"]
    assert props == {
        "name": "TypeError",
        "message": "x is not a function",
        "source": None,
        "line": None,
        "col": None,
        "stack": None,
    }


def test_error_top_level_keeps_extra_properties() -> None:
    event = build("error_top_level")
    event["properties"] = {"component": "checkout"}
    props = accept(event)["properties"]
    assert props["component"] == "checkout"
    assert props["name"] == "TypeError"


def test_error_in_properties_with_null_stack() -> None:
    event = build("error_in_properties")
    event["properties"]["stack"] = None
    assert accept(event)["properties"]["stack"] is None


def test_error_in_properties_keeps_a_sent_name() -> None:
    event = build("error_in_properties")
    event["properties"]["name"] = "TypeError"
    assert accept(event)["properties"]["name"] == "TypeError"


# A mix of the two shapes: the first shape's properties with the second shape's top-level name.
def test_error_in_properties_with_a_top_level_name_is_accepted_with_the_name() -> None:
    event = build("error_in_properties")
    event["name"] = "TypeError"
    props = accept(event)["properties"]
    assert props["name"] == "TypeError"
    assert (props["message"], props["line"], props["col"]) == (
        "Cannot read property 'x' of undefined",
        42,
        15,
    )


def test_error_in_properties_with_a_top_level_name_of_the_wrong_type_is_rejected() -> None:
    event = build("error_in_properties")
    event["name"] = 5
    rejection = reject(event)
    assert (rejection.reason, rejection.field) == ("invalid_field", "name")


# The other mix: the second shape's top-level name and message, its location in properties
# (which the contract leaves free-form there): the location is kept, not replaced by nulls.
def test_error_top_level_takes_the_location_sent_in_properties() -> None:
    event = build("error_top_level")
    location = {key: event.pop(key) for key in ("source", "line", "col", "stack")}
    event["properties"] = {**location, "component": "checkout"}
    event["source"] = None  # the top level's null does not hide the value in properties
    props = accept(event)["properties"]
    assert props == {
        **location,
        "name": "TypeError",
        "message": "x is not a function",
        "component": "checkout",
    }


def test_error_top_level_location_in_properties_is_type_checked() -> None:
    event = build("error_top_level")
    del event["line"]
    event["properties"] = {"line": "7"}
    rejection = reject(event)
    assert (rejection.reason, rejection.field) == ("invalid_field", "properties.line")


# --- missing fields ----------------------------------------------------------------------------

BASE_FIELDS = [
    "eventId",
    "eventType",
    "timestamp",
    "tenantId",
    "sessionId",
    "userId",
    "pageUrl",
    "referrer",
    "deviceInfo",
    "deviceInfo.deviceType",
    "deviceInfo.os",
    "deviceInfo.browser",
]


@pytest.mark.parametrize("kind", ["page_view", "click", "error_in_properties", "performance"])
@pytest.mark.parametrize("field", BASE_FIELDS)
def test_missing_base_field(kind: str, field: str) -> None:
    event = del_path(build(kind), field)
    rejection = reject(event)
    assert (rejection.reason, rejection.field) == ("missing_field", field)
    assert field in rejection.detail


@pytest.mark.parametrize(
    "kind",
    [
        "page_view",
        "click",
        "performance",
        "error_in_properties",
        "error_top_level",
    ],
)
def test_missing_properties(kind: str) -> None:
    event = del_path(build(kind), "properties")
    outcome = process_batch(make_batch([event]), POLICY)
    assert outcome.processed == []
    assert (outcome.rejected[0]["reason"], outcome.rejected[0]["field"]) == (
        "missing_field",
        "properties",
    )


@pytest.mark.parametrize(
    "kind",
    [
        "page_view",
        "click",
        "performance",
        "error_top_level",
    ],
)
@pytest.mark.parametrize("value", [[], ["title"], "props", 3, None])
def test_properties_not_an_object(kind: str, value: Any) -> None:
    event = set_path(build(kind), "properties", value)
    outcome = process_batch(make_batch([event]), POLICY)
    assert outcome.processed == []
    assert (outcome.rejected[0]["reason"], outcome.rejected[0]["field"]) == (
        "invalid_field",
        "properties",
    )


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("page_view", "properties.title"),
        ("click", "properties.tag"),
        ("click", "properties.id"),
        ("performance", "properties.loadTime"),
        ("performance", "properties.domContentLoaded"),
        ("error_in_properties", "properties.message"),
        ("error_in_properties", "properties.source"),
        ("error_in_properties", "properties.line"),
        ("error_in_properties", "properties.col"),
        ("error_in_properties", "properties.stack"),
        ("error_top_level", "name"),
        ("error_top_level", "message"),
    ],
)
def test_missing_required_property(kind: str, field: str) -> None:
    rejection = reject(del_path(build(kind), field))
    assert (rejection.reason, rejection.field) == ("missing_field", field)


def test_error_properties_shape_missing_message_is_still_rejected() -> None:
    # Whatever field is named, the event must not get through.
    rejection = reject(del_path(build("error_in_properties"), "properties.message"))
    assert rejection.reason == "missing_field"


# --- wrong types -------------------------------------------------------------------------------

WRONG_TYPES = [
    ("page_view", "eventId", 550),
    ("page_view", "eventId", "not-a-uuid"),
    ("page_view", "eventId", "550e8400-e29b-41d4-a716"),
    ("page_view", "tenantId", 123),
    ("page_view", "tenantId", None),
    ("page_view", "sessionId", 123),
    ("page_view", "sessionId", ""),
    ("page_view", "userId", 456),
    ("page_view", "userId", True),
    ("page_view", "userId", ["user-456"]),
    ("page_view", "pageUrl", {"href": "https://example.com"}),
    ("page_view", "pageUrl", None),
    ("page_view", "referrer", 0),
    ("page_view", "deviceInfo", []),
    ("page_view", "deviceInfo", "desktop"),
    ("page_view", "deviceInfo", None),
    ("page_view", "deviceInfo.deviceType", 1),
    ("page_view", "deviceInfo.os", None),
    ("page_view", "deviceInfo.browser", True),
    ("page_view", "seq", "1"),
    ("page_view", "seq", True),
    ("page_view", "seq", 1.5),
    ("page_view", "seq", -1),
    ("page_view", "seq", 2**32),
    ("page_view", "properties.title", 5),
    ("page_view", "properties.title", None),
    ("page_view", "properties.title", ["Example"]),
    ("click", "properties.tag", ["BUTTON"]),
    ("click", "properties.tag", None),
    ("click", "properties.id", 7),
    ("click", "properties.id", {"id": "x"}),
    ("performance", "properties.loadTime", -1),
    ("performance", "properties.loadTime", 86_400_001),
    ("performance", "properties.domContentLoaded", -0.001),
    ("error_in_properties", "properties.message", 5),
    ("error_in_properties", "properties.source", None),
    ("error_in_properties", "properties.line", "42"),
    ("error_in_properties", "properties.line", True),
    ("error_in_properties", "properties.line", 4.5),
    ("error_in_properties", "properties.line", -1),
    ("error_in_properties", "properties.col", None),
    ("error_in_properties", "properties.stack", 5),
    ("error_in_properties", "properties.stack", ["frame"]),
    ("error_top_level", "name", 5),
    ("error_top_level", "name", None),
    ("error_top_level", "message", {"text": "x"}),
    ("error_top_level", "line", "7"),
    ("error_top_level", "col", False),
    ("error_top_level", "stack", 1),
]


@pytest.mark.parametrize(("kind", "field", "value"), WRONG_TYPES)
def test_wrong_type_is_invalid_field(kind: str, field: str, value: Any) -> None:
    rejection = reject(set_path(build(kind), field, value))
    assert (rejection.reason, rejection.field) == ("invalid_field", field)
    assert rejection.detail


# int | float fields: pydantic reports them per union member.
NUMBER_WRONG_TYPES = [
    ("page_view", "timestamp", "1625539200000"),
    ("page_view", "timestamp", True),
    ("page_view", "timestamp", None),
    ("page_view", "timestamp", [1625539200000]),
    ("page_view", "timestamp", {"ms": 1}),
    ("performance", "properties.loadTime", "2450"),
    ("performance", "properties.loadTime", True),
    ("performance", "properties.domContentLoaded", None),
]


@pytest.mark.parametrize(("kind", "field", "value"), NUMBER_WRONG_TYPES)
def test_wrong_type_number_is_invalid_field_under_that_field(
    kind: str, field: str, value: Any
) -> None:
    rejection = reject(set_path(build(kind), field, value))
    assert rejection.reason == "invalid_field"
    assert rejection.field is not None
    assert rejection.field == field or rejection.field.startswith(field + ".")


@pytest.mark.parametrize(("kind", "field", "value"), NUMBER_WRONG_TYPES)
def test_wrong_type_number_names_the_exact_field(kind: str, field: str, value: Any) -> None:
    rejection = reject(set_path(build(kind), field, value))
    assert (rejection.reason, rejection.field) == ("invalid_field", field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timestamp", float("nan")),
        ("timestamp", float("inf")),
        ("timestamp", float("-inf")),
        ("timestamp", 0),
        ("timestamp", -1625539200000),
    ],
)
def test_non_finite_or_non_positive_timestamp_rejected(field: str, value: float) -> None:
    rejection = reject(set_path(build("page_view"), field, value))
    assert (rejection.reason, rejection.field) == ("invalid_field", field)


@pytest.mark.parametrize("field", ["properties.loadTime", "properties.domContentLoaded"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_performance_numbers_rejected(field: str, value: float) -> None:
    rejection = reject(set_path(build("performance"), field, value))
    assert (rejection.reason, rejection.field) == ("invalid_field", field)


@pytest.mark.parametrize("value", ["purchase", "PAGE_VIEW", "", "page-view"])
def test_unknown_event_type(value: str) -> None:
    rejection = reject(set_path(build("page_view"), "eventType", value))
    assert (rejection.reason, rejection.field) == ("unknown_event_type", "eventType")


def test_non_string_event_type_is_rejected_on_event_type() -> None:
    rejection = reject(set_path(build("page_view"), "eventType", 1))
    assert rejection.reason in {"unknown_event_type", "invalid_field"}
    assert rejection.field == "eventType"


def test_float_timestamp_is_truncated_to_ms() -> None:
    event = build("page_view")
    ts = event["timestamp"]
    event["timestamp"] = ts + 0.75
    processed = accept(event)
    assert processed["client_timestamp"] == ts
    assert processed["timestamp"] == ts


# --- tenants -----------------------------------------------------------------------------------


def test_unknown_tenant() -> None:
    event = ev.page_view("stranger", SESSION)
    outcome = process_batch(make_batch([event], api_key="stranger"), POLICY)
    letter = outcome.rejected[0]
    assert (letter["reason"], letter["field"], letter["tenant_id"]) == (
        "unknown_tenant",
        "tenantId",
        "stranger",
    )


def test_tenant_mismatch_with_batch_key() -> None:
    event = ev.page_view(OTHER_TENANT, SESSION)
    rejection = reject(event, api_key=TENANT)
    assert (rejection.reason, rejection.field) == ("tenant_mismatch", "tenantId")


def test_unknown_tenant_is_checked_before_mismatch() -> None:
    rejection = reject(ev.page_view("stranger", SESSION), api_key=TENANT)
    assert rejection.reason == "unknown_tenant"


# --- time window -------------------------------------------------------------------------------

RECEIVED = 1_700_000_000_000


@pytest.mark.parametrize(
    ("offset_ms", "accepted"),
    [
        (-365 * DAY_MS, True),
        (-365 * DAY_MS - 1, False),
        (-400 * DAY_MS, False),
        (-3_600_000, True),
        (86_400_000, True),
        (86_400_001, False),
        (30 * DAY_MS, False),
    ],
)
def test_timestamp_window(offset_ms: int, accepted: bool) -> None:
    event = build("page_view", ts=RECEIVED + offset_ms)
    outcome = process_batch(make_batch([event], received_at=RECEIVED), POLICY)
    if accepted:
        assert outcome.processed[0]["timestamp"] == RECEIVED + offset_ms
    else:
        assert outcome.processed == []
        assert (outcome.rejected[0]["reason"], outcome.rejected[0]["field"]) == (
            "timestamp_out_of_range",
            "timestamp",
        )


def test_time_window_follows_policy() -> None:
    pol = policy(retention_days=1, max_future_skew_s=10)
    old = build("page_view", ts=RECEIVED - 2 * DAY_MS)
    future = build("page_view", ts=RECEIVED + 11_000)
    ok = build("page_view", ts=RECEIVED + 9_000)
    outcome = process_batch(make_batch([old, future, ok], received_at=RECEIVED), pol)
    assert [r["reason"] for r in outcome.rejected] == ["timestamp_out_of_range"] * 2
    assert [p["event_id"] for p in outcome.processed] == [ok["eventId"]]


# --- property budget ---------------------------------------------------------------------------


def test_too_many_properties() -> None:
    event = build("page_view")
    event["properties"].update({f"k{i}": i for i in range(64)})  # 65 keys with title
    rejection = reject(event)
    assert (rejection.reason, rejection.field) == ("too_many_properties", "properties")


def test_property_budget_boundary_is_accepted() -> None:
    event = build("page_view")
    event["properties"].update({f"k{i}": i for i in range(63)})  # exactly 64
    props = accept(event)["properties"]
    assert len(props) == 64
    assert props["k62"] == 62


def test_too_many_properties_on_top_level_error_shape() -> None:
    event = build("error_top_level")
    event["properties"] = {f"k{i}": i for i in range(65)}
    rejection = reject(event)
    assert rejection.reason == "too_many_properties"


def test_property_budget_follows_policy() -> None:
    event = build("click")
    event["properties"]["extra"] = 1
    with pytest.raises(Rejection, match="limit is 2"):
        validate_event(event, make_batch([event]), policy(max_properties=2))


# --- non-objects and mixed batches -------------------------------------------------------------


@pytest.mark.parametrize("event", [1, "event", None, True, 2.5, [], [{"eventId": "x"}]])
def test_non_object_event(event: Any) -> None:
    outcome = process_batch(make_batch([event]), POLICY)
    assert outcome.processed == []
    letter = outcome.rejected[0]
    assert (letter["reason"], letter["field"], letter["tenant_id"]) == (
        "not_an_object",
        None,
        None,
    )
    assert letter["event"] == event


def test_mixed_batch_keeps_good_events_in_order_and_dead_letters_each_bad_one() -> None:
    good = [build("page_view"), build("click"), build("performance")]
    missing = del_path(build("click"), "sessionId")
    wrong_tenant = ev.page_view(OTHER_TENANT, SESSION)
    unknown_type = set_path(build("page_view"), "eventType", "purchase")
    untidy = set_path(build("page_view"), "pageUrl", "https://x.test/\x00\x1b")
    events: list[Any] = [
        good[0],
        42,
        missing,
        good[1],
        wrong_tenant,
        unknown_type,
        untidy,
        good[2],
    ]
    snapshot = copy.deepcopy(events)
    received = ev.now_ms()
    outcome = process_batch(make_batch(events, received_at=received, ip="192.0.2.1"), POLICY)

    assert [p["event_id"] for p in outcome.processed] == [
        good[0]["eventId"],
        good[1]["eventId"],
        untidy["eventId"],
        good[2]["eventId"],
    ]
    assert [r["reason"] for r in outcome.rejected] == [
        "not_an_object",
        "missing_field",
        "tenant_mismatch",
        "unknown_event_type",
    ]
    assert [r["event"] for r in outcome.rejected] == [42, missing, wrong_tenant, unknown_type]
    assert outcome.rejected[1]["event"] is missing
    assert outcome.rejected[2]["tenant_id"] == OTHER_TENANT
    for letter in outcome.rejected:
        assert letter["received_at"] == received
        assert letter["ip"] == "192.0.2.1"
        assert isinstance(letter["detail"], str) and letter["detail"]
    # Nothing was mutated, not even the event whose URL got sanitized.
    assert events == snapshot


def test_dead_letter_tenant_id_only_when_a_string() -> None:
    event = set_path(build("page_view"), "tenantId", 99)
    letter = process_batch(make_batch([event]), POLICY).rejected[0]
    assert letter["tenant_id"] is None
    assert letter["event"]["tenantId"] == 99


# --- clock skew --------------------------------------------------------------------------------

HOUR = 3_600_000


def test_clock_skew_behind_is_corrected() -> None:
    client_ts = RECEIVED - 3 * HOUR - 5_000
    event = build("page_view", ts=client_ts)
    processed = accept(event, received_at=RECEIVED, sent_at=RECEIVED - 3 * HOUR)
    assert processed["client_timestamp"] == client_ts
    assert processed["timestamp"] == RECEIVED - 5_000
    assert processed["received_at"] == RECEIVED


def test_clock_skew_ahead_is_corrected() -> None:
    client_ts = RECEIVED + 2 * HOUR - 1_000
    processed = accept(
        build("page_view", ts=client_ts), received_at=RECEIVED, sent_at=RECEIVED + 2 * HOUR
    )
    assert processed["client_timestamp"] == client_ts
    assert processed["timestamp"] == RECEIVED - 1_000


def test_skew_within_tolerance_is_not_applied() -> None:
    client_ts = RECEIVED - 10_000
    processed = accept(
        build("page_view", ts=client_ts), received_at=RECEIVED, sent_at=RECEIVED - 30_000
    )
    assert processed["timestamp"] == client_ts == processed["client_timestamp"]


def test_no_sent_at_means_no_correction() -> None:
    client_ts = RECEIVED - 5 * HOUR
    processed = accept(build("page_view", ts=client_ts), received_at=RECEIVED, sent_at=None)
    assert processed["timestamp"] == client_ts


def test_skew_correction_happens_before_the_time_window_check() -> None:
    # A client clock two years behind: its timestamps are ancient but sentAt says so too.
    two_years = 730 * DAY_MS
    event = build("page_view", ts=RECEIVED - two_years - 2_000)
    processed = accept(event, received_at=RECEIVED, sent_at=RECEIVED - two_years)
    assert processed["timestamp"] == RECEIVED - 2_000
    # A client clock three days ahead.
    event = build("page_view", ts=RECEIVED + 3 * DAY_MS)
    processed = accept(event, received_at=RECEIVED, sent_at=RECEIVED + 3 * DAY_MS)
    assert processed["timestamp"] == RECEIVED


def test_skew_tolerance_follows_policy() -> None:
    event = build("page_view", ts=RECEIVED - 20_000)
    batch = make_batch([event], received_at=RECEIVED, sent_at=RECEIVED - 10_000)
    strict = validate_event(event, batch, policy(skew_tolerance_ms=0))
    lenient = validate_event(event, batch, policy(skew_tolerance_ms=60_000))
    assert strict["timestamp"] == RECEIVED - 10_000
    assert lenient["timestamp"] == RECEIVED - 20_000


# --- enrichment --------------------------------------------------------------------------------


def test_seq_passes_through() -> None:
    event = build("click")
    event["seq"] = 17
    assert accept(event)["seq"] == 17
    assert accept(build("click"))["seq"] is None


def test_user_agent_is_capped_and_cleaned() -> None:
    processed = accept(build("page_view"), user_agent="Agent\x00/1 " + "x" * 2000)
    assert len(processed["user_agent"]) == 512
    assert processed["user_agent"].startswith("Agent/1 x")


def test_ip_is_copied_from_the_batch() -> None:
    assert accept(build("page_view"), ip=None)["ip_address"] is None
    assert accept(build("page_view"), ip="2001:db8::1")["ip_address"] == "2001:db8::1"


# -- validated means storable ---------------------------------------------------------------


def test_client_clock_near_1970_is_accepted_with_its_own_time() -> None:
    now = ev.now_ms()
    event = ev.page_view(TENANT, SESSION, ts=5000)
    processed = accept(event, received_at=now, sent_at=5000)
    assert processed["client_timestamp"] == 5000
    assert processed["timestamp"] == now  # skew-corrected


@pytest.mark.parametrize("timestamp", [2e19, 2.0**64, 1e300, 10_413_792_000_000])
def test_client_timestamp_beyond_the_store_is_rejected(timestamp: float) -> None:
    event = ev.page_view(TENANT, SESSION)
    event["timestamp"] = timestamp
    rejection = reject(event, sent_at=timestamp)
    assert (rejection.reason, rejection.field) == ("client_timestamp_out_of_range", "timestamp")


def test_latest_storable_client_timestamp_is_accepted() -> None:
    event = ev.page_view(TENANT, SESSION)
    event["timestamp"] = 10_413_791_999_999
    now = ev.now_ms()
    assert accept(event, received_at=now, sent_at=10_413_791_999_999)["timestamp"] == now


def test_nested_property_keys_are_counted() -> None:
    event = ev.click(TENANT, SESSION)
    event["properties"]["experiments"] = {f"k{i}": i for i in range(300)}
    rejection = reject(event)
    assert (rejection.reason, rejection.field) == ("too_many_property_keys", "properties")
    event["properties"]["experiments"] = {f"k{i}": i for i in range(200)}
    assert len(accept(event)["properties"]["experiments"]) == 200


def test_property_characters_are_bounded() -> None:
    event = ev.click(TENANT, SESSION)
    event["properties"]["notes"] = ["x" * 2000] * 20
    rejection = reject(event)
    assert (rejection.reason, rejection.field) == ("properties_too_large", "properties")


def test_property_integer_beyond_64_bits_is_rejected() -> None:
    event = ev.click(TENANT, SESSION)
    event["properties"]["big"] = {"n": 2**64}
    rejection = reject(event)
    assert (rejection.reason, rejection.field) == ("integer_out_of_range", "properties")
    event["properties"]["big"] = {"n": 2**64 - 1, "m": -(2**63)}
    assert accept(event)["properties"]["big"] == {"n": 2**64 - 1, "m": -(2**63)}


def test_dead_letter_carries_the_authenticated_key() -> None:
    event = ev.page_view(TENANT, SESSION)
    outcome = process_batch(make_batch([event], api_key=OTHER_TENANT), POLICY)
    [letter] = outcome.rejected
    assert (letter["reason"], letter["tenant_id"], letter["api_key"]) == (
        "tenant_mismatch",
        TENANT,
        OTHER_TENANT,
    )
