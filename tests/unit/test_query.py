"""web/read/ (params, sql, shape): request validation, SQL building and answer shaping,
without a store."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from clickhouse_connect.driver.binding import bind_query

import web.read.sql
from web.read.params import PARAMS, EventStreamParams, LossParams, parse_instant, parse_request
from web.read.request import DIMENSIONS, FILTERS, QueryError, StatsRequest
from web.read.shape import (
    shape_error_detail,
    shape_health,
    shape_performance,
    shape_sessions,
    shape_traffic,
)
from web.read.sql import (
    Query,
    breakdown_query,
    error_detail_query,
    errors_query,
    health_query,
    pages_query,
    performance_query,
    referrers_query,
    sessions_query,
    traffic_query,
    uses_session_hours,
)

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR
PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")

BUILDERS: dict[str, Callable[[str, StatsRequest], Query]] = {
    "traffic": traffic_query,
    "pages": pages_query,
    "referrers": referrers_query,
    "breakdown": breakdown_query,
    "sessions": sessions_query,
    "errors": errors_query,
    "error_detail": error_detail_query,
    "performance": performance_query,
    "health": health_query,
}
EXTRA: dict[str, list[tuple[str, str]]] = {
    "breakdown": [("by", "os")],
    "error_detail": [("fingerprint", "0123456789abcdef")],
}


def request(endpoint: str, *pairs: tuple[str, str], tenant: str = "acme") -> StatsRequest:
    return parse_request(endpoint, tenant, [*EXTRA.get(endpoint, []), *pairs], NOW)


def all_queries(req_pairs: list[tuple[str, str]]) -> list[Query]:
    queries = []
    for endpoint, builder in BUILDERS.items():
        pairs = [p for p in req_pairs if p[0] in PARAMS[endpoint].accepted()]
        queries.append(builder("events", request(endpoint, *pairs)))
    return queries


# -- instants and ranges -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1767225600000", NOW),
        ("2026-01-01T00:00:00Z", NOW),
        ("2026-01-01T00:00:00.250Z", NOW + 250),
        ("2026-01-01T02:00:00+02:00", NOW),
        ("2026-01-01T02:00:00 02:00", NOW),  # "+" decoded to a space in a query string
        ("2026-01-01T00:00:00", NOW),  # no offset: UTC
        ("2026-01-01", NOW),
        ("2026-01-01 00:00:00z", NOW),
    ],
)
def test_instants_parse_as_epoch_milliseconds(text: str, expected: int) -> None:
    assert parse_instant(text, "from") == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-13-01", "1767225600", "0", "-5", "99999999999999999", "1.5e12"]
)
def test_bad_instants_are_refused(text: str) -> None:
    with pytest.raises(QueryError) as error:
        parse_instant(text, "from")
    assert "from" in error.value.message
    assert error.value.body() == {"error": "bad_request", "message": error.value.message}


def test_default_range_is_the_last_seven_days_hourly() -> None:
    req = request("traffic")
    assert (req.range.from_ms, req.range.to_ms) == (NOW - 7 * DAY, NOW)
    assert req.range.interval == "hour"


@pytest.mark.parametrize(
    ("span", "interval"),
    [(HOUR, "minute"), (6 * HOUR, "minute"), (DAY, "hour"), (14 * DAY, "hour"), (30 * DAY, "day")],
)
def test_auto_interval_follows_the_span(span: int, interval: str) -> None:
    req = request("traffic", ("from", str(NOW - span)), ("to", str(NOW)))
    assert req.range.interval == interval


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("from", str(NOW)), ("to", str(NOW))], "earlier than"),
        ([("from", str(NOW)), ("to", str(NOW - 1))], "earlier than"),
        ([("from", str(NOW - 401 * DAY)), ("to", str(NOW))], "400 days"),
        ([("from", str(NOW - 2 * DAY)), ("interval", "minute")], "buckets exceed"),
        ([("from", str(NOW - 70 * DAY)), ("interval", "hour")], "buckets exceed"),
        ([("interval", "week")], "interval must be"),
        ([("to", "1990-01-01T00:00:00Z")], "between 2000-01-01"),
    ],
)
def test_bad_ranges_are_refused(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        request("traffic", *pairs)


def test_four_hundred_days_by_day_is_allowed() -> None:
    req = request("traffic", ("from", str(NOW - 400 * DAY)), ("interval", "day"))
    assert len(req.range.buckets()) == 400


def test_buckets_are_utc_aligned_and_cover_the_range() -> None:
    req = request("traffic", ("from", str(NOW + 90 * 60_000)), ("to", str(NOW + 4 * HOUR)))
    assert req.range.interval == "minute"
    req = request(
        "traffic",
        ("from", str(NOW + 90 * 60_000)),
        ("to", str(NOW + 4 * HOUR)),
        ("interval", "hour"),
    )
    assert req.range.buckets() == [NOW + HOUR, NOW + 2 * HOUR, NOW + 3 * HOUR]


# -- parameters and filters ----------------------------------------------------------------------
def test_unknown_and_repeated_parameters_are_refused() -> None:
    with pytest.raises(QueryError, match="unknown parameter 'pageurl'"):
        request("pages", ("pageurl", "x"))
    with pytest.raises(QueryError, match="more than once"):
        request("pages", ("os", "Mac"), ("os", "Linux"))
    with pytest.raises(QueryError, match="unknown parameter 'limit'"):
        request("sessions", ("limit", "5"))
    with pytest.raises(QueryError, match="unknown parameter 'from'"):
        request("health", ("from", "2026-01-01"))


def test_a_misspelt_parameter_is_named_before_a_bad_value() -> None:
    with pytest.raises(QueryError, match="unknown parameter 'pageurl'"):
        request("pages", ("limit", "0"), ("pageurl", "x"))
    with pytest.raises(QueryError, match="'os' is given more than once"):
        request("pages", ("from", "yesterday"), ("os", "Mac"), ("os", "Linux"))


def test_every_stats_endpoint_takes_every_filter() -> None:
    for endpoint, params in PARAMS.items():
        if endpoint != "health":
            assert set(FILTERS) <= params.accepted(), endpoint


def test_filters_are_kept_in_a_fixed_order_and_empty_ones_dropped() -> None:
    req = request("pages", ("os", "Mac"), ("page_url", "https://a/"), ("browser", ""))
    assert req.filters == (("page_url", "https://a/"), ("os", "Mac"))


def test_oversized_filters_are_refused() -> None:
    with pytest.raises(QueryError, match="longer than 2048"):
        request("pages", ("page_url", "x" * 2049))
    with pytest.raises(QueryError, match="longer than 4096"):
        request("pages", ("page_url", "x" * 4097))


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1e3", "1_0", " 5", "+5"])
def test_limits_are_bounded(limit: str) -> None:
    with pytest.raises(QueryError, match="limit"):
        request("pages", ("limit", limit))


def test_limit_defaults() -> None:
    assert request("pages").limit == 10
    assert request("error_detail").limit == 20
    assert request("pages", ("limit", "100")).limit == 100


@pytest.mark.parametrize("by", ["", "page_url", "tenant_id", "os; DROP TABLE events"])
def test_breakdown_dimension_comes_from_an_allowlist(by: str) -> None:
    with pytest.raises(QueryError, match="by must be one of"):
        parse_request("breakdown", "acme", [("by", by)], NOW)


@pytest.mark.parametrize(
    "fingerprint", ["", "0123", "0123456789ABCDEF", "0123456789abcdeg", "x" * 16]
)
def test_fingerprints_are_validated(fingerprint: str) -> None:
    with pytest.raises(QueryError, match="fingerprint"):
        parse_request("error_detail", "acme", [("fingerprint", fingerprint)], NOW)


@pytest.mark.parametrize(
    ("minutes", "ok"), [("1", True), ("1440", True), ("0", False), ("1441", False)]
)
def test_health_window_is_bounded(minutes: str, ok: bool) -> None:
    if ok:
        req = request("health", ("minutes", minutes))
        assert len(req.range.buckets()) == int(minutes)
        assert req.range.to_ms == NOW + 60_000  # the current minute is included
    else:
        with pytest.raises(QueryError, match="minutes"):
            request("health", ("minutes", minutes))


def test_the_event_stream_takes_one_subject_and_a_bounded_limit() -> None:
    assert EventStreamParams.validated([("session_id", "s1")]).subject() == ("session_id", "s1")
    assert EventStreamParams.validated([("user_id", "u1")]).subject() == ("user_id", "u1")
    assert EventStreamParams.validated([("user_id", "u1")]).limit == 1000
    assert EventStreamParams.validated([("user_id", "u1"), ("limit", "10000")]).limit == 10_000
    for pairs in ([], [("session_id", "")], [("session_id", "s1"), ("user_id", "u1")]):
        with pytest.raises(QueryError, match="give session_id or user_id"):
            EventStreamParams.validated(pairs).subject()


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("session_id", "s"), ("limit", "0")], "limit must be between 1 and 10000"),
        ([("session_id", "s"), ("limit", "10001")], "limit must be between 1 and 10000"),
        ([("session_id", "s"), ("limit", "ten")], "limit must be an integer"),
        ([("session_id", "s"), ("sessionid", "s")], "unknown parameter 'sessionid'"),
        ([("session_id", "s"), ("session_id", "t")], "'session_id' is given more than once"),
    ],
)
def test_bad_event_stream_parameters_are_refused(
    pairs: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(QueryError, match=message):
        EventStreamParams.validated(pairs)


@pytest.mark.parametrize(
    ("hours", "answer"),
    [("1", 1), ("9600", 9600), ("", 24), ("0", None), ("9601", None), ("-3", None), ("x", None)],
)
def test_the_loss_window_is_bounded(hours: str, answer: int | None) -> None:
    if answer is not None:
        assert LossParams.validated([("hours", hours)]).hours == answer
    else:
        with pytest.raises(QueryError, match="hours must be"):
            LossParams.validated([("hours", hours)])
    with pytest.raises(QueryError, match="unknown parameter 'hour'"):
        LossParams.validated([("hour", "2")])


# -- SQL: values are bound server-side, never spliced -------------------------------------------
HOSTILE = "x' OR 1=1 --}{tenant:String}\\'"


def test_every_placeholder_is_bound_and_every_parameter_used() -> None:
    pairs = [(name, f"{name}-value") for name in FILTERS]
    for query in all_queries(pairs):
        names = {name for name, _type in PLACEHOLDER.findall(query.sql)}
        assert names == set(query.parameters), query.sql


def test_request_values_never_reach_the_sql_text() -> None:
    pairs = [(name, HOSTILE) for name in FILTERS]
    for query in all_queries(pairs):
        assert "OR 1=1" not in query.sql
        assert "acme" not in query.sql  # the tenant is a parameter too
        assert query.parameters["tenant"] == "acme"
    traffic = traffic_query("events", request("traffic", *pairs))
    assert {traffic.parameters[f"f_{name}"] for name in FILTERS} == {HOSTILE}
    assert "page_url = {f_page_url:String}" in traffic.sql


def test_tenant_and_range_restrict_every_query() -> None:
    for query in all_queries([]):
        assert "tenant_id = {tenant:String}" in query.sql
        assert "max_execution_time" in query.sql
    pages = pages_query("events", request("pages"))
    assert pages.parameters == {
        "tenant": "acme",
        "from_ms": NOW - 7 * DAY,
        "to_ms": NOW,
        "limit": 10,
    }
    assert "timestamp >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')" in pages.sql
    assert "timestamp < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')" in pages.sql


def test_every_figure_counts_distinct_event_ids() -> None:
    for query in all_queries([]):
        assert "FINAL" not in query.sql
        assert any(k in query.sql for k in ("uniqExact", "GROUP BY event_id", "LIMIT 1 BY id"))
    for endpoint in ("traffic", "breakdown"):
        sql = BUILDERS[endpoint]("events", request(endpoint)).sql
        assert "uniqExact(event_id) AS pv" in sql
        assert sql.count("AND event_type = 'page_view'") == 1
    assert "GROUP BY event_id" in performance_query("events", request("performance")).sql
    detail = request("error_detail")
    assert "LIMIT 1 BY id" in error_detail_query("events", detail).sql


ROLLUP = "FROM events_session_hours"


def test_sessions_come_from_the_rollup_for_whole_hours_and_from_events_at_the_ends() -> None:
    pairs = [("from", str(NOW + HOUR // 2 + 1)), ("to", str(NOW + 5 * HOUR + 600_000))]
    for endpoint, extra in (("traffic", [("interval", "hour")]), ("breakdown", [])):
        query = BUILDERS[endpoint]("events", request(endpoint, *pairs, *extra))
        assert query.sql.count(ROLLUP) == 1
        assert (query.parameters["first_hour"], query.parameters["last_hour"]) == (
            NOW + HOUR,
            NOW + 5 * HOUR,
        )
        assert "hour >= fromUnixTimestamp64Milli({first_hour:Int64}, 'UTC')" in query.sql
        assert "hour < fromUnixTimestamp64Milli({last_hour:Int64}, 'UTC')" in query.sql
        assert (
            "AND (timestamp < fromUnixTimestamp64Milli({first_hour:Int64}, 'UTC')\n"
            "           OR timestamp >= fromUnixTimestamp64Milli({last_hour:Int64}, 'UTC'))"
        ) in query.sql
    # Within one hour the rollup's part is empty and the events hold the whole range.
    inside = request("traffic", ("from", str(NOW + 60_000)), ("to", str(NOW + 50 * 60_000)))
    assert inside.range.interval == "minute"
    inside_breakdown = breakdown_query(
        "events", request("breakdown", ("from", str(NOW + 60_000)), ("to", str(NOW + 3_000_000)))
    )
    assert inside_breakdown.parameters["first_hour"] == NOW + HOUR
    assert inside_breakdown.parameters["last_hour"] == NOW + HOUR


def test_the_rollup_takes_device_filters_but_not_pages_or_minutes() -> None:
    by_os = traffic_query("events", request("traffic", ("os", "Mac"), ("interval", "day")))
    rollup_part = by_os.sql.split(ROLLUP)[1].split("UNION ALL")[0]
    assert "os = {f_os:String}" in rollup_part
    assert "tenant_id = {tenant:String}" in rollup_part
    for endpoint in ("traffic", "breakdown"):
        page = BUILDERS[endpoint]("events", request(endpoint, ("page_url", "https://a.example/")))
        assert ROLLUP not in page.sql
        assert "first_hour" not in page.parameters
    short = [("from", str(NOW - 5 * HOUR)), ("to", str(NOW))]
    minutes = traffic_query("events", request("traffic", *short, ("interval", "minute")))
    assert ROLLUP not in minutes.sql
    assert uses_session_hours(request("traffic", *short, ("interval", "hour")))
    assert not uses_session_hours(request("traffic", *short, ("interval", "minute")))
    qualified = breakdown_query("analytics.events_v2", request("breakdown")).sql
    assert "FROM analytics.events_v2_session_hours" in qualified


def test_sessions_and_users_are_counted_by_their_stored_keys() -> None:
    for query in all_queries([]):
        assert "uniqExact(session_id)" not in query.sql
        assert "uniqExact(user_id)" not in query.sql
        assert "GROUP BY session_id" not in query.sql
    traffic = traffic_query("events", request("traffic")).sql
    assert "uniqExact(session_key)" in traffic and "uniqExact(user_key)" in traffic
    assert "GROUP BY session_key" in sessions_query("events", request("sessions")).sql


def test_error_detail_binds_the_fingerprint_as_a_number() -> None:
    detail = error_detail_query("events", request("error_detail"))
    assert detail.parameters["fp"] == 0x0123456789ABCDEF
    assert detail.sql.count("error_fingerprint = {fp:UInt64}") == 3


@pytest.mark.parametrize("by", DIMENSIONS)
def test_breakdown_groups_by_the_chosen_column_only(by: str) -> None:
    query = breakdown_query("events", parse_request("breakdown", "acme", [("by", by)], NOW))
    assert query.sql.count(f"SELECT {by} AS key,") == 3  # page views, rollup, range ends
    others = set(DIMENSIONS) - {by}
    assert not any(f"{other} AS key" in query.sql for other in others)


def test_table_names_are_checked() -> None:
    assert "FROM analytics.events_v2" in pages_query("analytics.events_v2", request("pages")).sql
    with pytest.raises(ValueError, match="table"):
        pages_query("events; DROP TABLE x", request("pages"))


def test_the_http_server_path_sends_the_same_sql_with_server_side_parameters() -> None:
    """clickhouse-connect's HTTP client and its chDB client bind through the same bind_query.

    With {name:Type} placeholders the statement is sent as written and the values travel as
    param_<name> (HTTP query parameters for a server), so the SQL is byte-identical for both.
    """
    pairs = [(name, HOSTILE) for name in FILTERS]
    for query in all_queries(pairs):
        final_sql, bound = bind_query(query.sql, query.parameters)
        assert final_sql == query.sql
        assert set(bound) == {f"param_{name}" for name in query.parameters}
        assert HOSTILE not in str(final_sql)


def test_sql_does_not_depend_on_the_store_url() -> None:
    # Builders take only the table name: nothing in them can vary with chdb:// versus http://.
    import inspect

    for builder in BUILDERS.values():
        assert list(inspect.signature(builder).parameters) == ["table", "request"]
    source = inspect.getsource(web.read.sql)
    assert "chdb" not in source.replace("chDB", "")


# -- shaping -------------------------------------------------------------------------------------
def test_traffic_series_is_filled_with_zero_buckets() -> None:
    req = request("traffic", ("from", str(NOW)), ("to", str(NOW + 3 * HOUR)), ("interval", "hour"))
    rows: list[dict[str, Any]] = [
        {"series": [(NOW + HOUR, 5, 2, 1)], "page_views": 5, "sessions": 2, "users": 1}
    ]
    body = shape_traffic(req, rows)
    assert body["totals"] == {"page_views": 5, "sessions": 2, "users": 1}
    assert [p["t"] for p in body["series"]] == [NOW, NOW + HOUR, NOW + 2 * HOUR]
    assert [p["page_views"] for p in body["series"]] == [0, 5, 0]
    assert body["range"] == {
        "from": NOW,
        "to": NOW + 3 * HOUR,
        "interval": "hour",
        "filters": {},
        "include_bots": False,
    }
    empty = shape_traffic(req, [{"series": [], "page_views": 0, "sessions": 0, "users": 0}])
    assert empty["totals"] == {"page_views": 0, "sessions": 0, "users": 0}
    assert [p["sessions"] for p in empty["series"]] == [0, 0, 0]


def test_sessions_rates_and_the_empty_case() -> None:
    req = request("sessions")
    empty = shape_sessions(req, [{"sessions": 0, "page_views": 0, "bounces": 0}])
    assert empty["pages_per_session"] == 0.0 and empty["bounce_rate"] == 0.0
    body = shape_sessions(
        req, [{"sessions": 4, "page_views": 6, "bounces": 3, "total_duration_ms": 10_000}]
    )
    assert body["pages_per_session"] == 1.5
    assert body["bounce_rate"] == 0.75
    assert body["avg_duration_ms"] == 2500.0


def test_performance_without_samples_gives_nulls() -> None:
    req = request("performance")
    nan = float("nan")
    body = shape_performance(
        req,
        [
            {
                "is_total": 1,
                "page_url": "",
                "samples": 0,
                "load_time": [nan, nan, nan],
                "dom_content_loaded": [nan, nan, nan],
            }
        ],
    )
    assert body["overall"]["load_time"] == {"p50": None, "p75": None, "p95": None}
    assert body["pages"] == []
    assert shape_performance(req, [])["overall"]["samples"] == 0


def test_health_fills_minutes_and_averages_the_lag() -> None:
    req = request("health", ("minutes", "3"))
    start = req.range.from_ms
    rows = [
        {
            "minute": start + 60_000,
            "events": 4,
            "stored_rows": 5,
            "lag_sum_ms": 500,
            "lag_max_ms": 300,
            "last_inserted_at": start + 61_000,
        }
    ]
    body = shape_health(req, rows, {"dead_lettered": {}})
    tenant = body["tenant"]
    assert [p["events"] for p in tenant["events_per_minute"]] == [0, 4, 0]
    assert tenant["events"] == 4
    assert tenant["lag_ms"] == {"avg": 100.0, "max": 300}
    assert tenant["last_inserted_at"] == start + 61_000
    assert body["worker"] == {"dead_lettered": {}}


def test_error_detail_takes_the_group_from_the_first_occurrence() -> None:
    req = request("error_detail")
    row = {
        "fingerprint": "0123456789abcdef",
        "name": None,
        "message": "boom",
        "source": "app.js",
        "line": 3,
        "occurrences": 2,
        "sessions": 1,
        "first_seen": 1,
        "last_seen": 2,
        "sample_stack": "at x",
        "event_id": "e2",
        "timestamp": 2,
        "session_id": "s",
        "user_id": None,
        "page_url": "/",
        "device_type": "desktop",
        "os": "Mac",
        "browser": "Safari",
        "country": None,
        "col": 1,
        "stack": "at x",
    }
    body = shape_error_detail(req, [row, {**row, "event_id": "e1", "timestamp": 1}])
    assert body["group"] == {
        "fingerprint": "0123456789abcdef",
        "name": None,
        "message": "boom",
        "source": "app.js",
        "line": 3,
        "count": 2,
        "sessions": 1,
        "first_seen": 1,
        "last_seen": 2,
        "sample_stack": "at x",
    }
    assert [o["event_id"] for o in body["occurrences"]] == ["e2", "e1"]
    assert "occurrences" not in body["occurrences"][0]
    assert shape_error_detail(req, []) == {
        "range": req.describe(),
        "group": None,
        "occurrences": [],
    }


# -- bots ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("TRUE", True), ("0", False), ("false", False), ("", False)],
)
def test_include_bots_is_a_yes_no_parameter(value: str, expected: bool) -> None:
    for endpoint in BUILDERS:
        if endpoint != "health":
            assert request(endpoint, ("include_bots", value)).include_bots is expected
    assert request("pages").include_bots is False
    assert request("pages", ("include_bots", value)).describe()["include_bots"] is expected


@pytest.mark.parametrize("value", ["yes", "2", "on", "-1"])
def test_other_include_bots_values_are_refused(value: str) -> None:
    with pytest.raises(QueryError, match="include_bots must be 1, 0, true or false"):
        request("traffic", ("include_bots", value))


def test_health_counts_every_stored_event_and_takes_no_bot_switch() -> None:
    with pytest.raises(QueryError, match="unknown parameter 'include_bots'"):
        request("health", ("include_bots", "1"))
    assert "is_bot" not in health_query("events", request("health")).sql


def test_bots_are_left_out_of_every_read_of_events_and_rollup_unless_asked() -> None:
    wide = [("from", str(NOW - 2 * DAY)), ("to", str(NOW))]  # whole hours: the rollup is read
    for endpoint, builder in BUILDERS.items():
        if endpoint == "health":
            continue
        default = builder("events", request(endpoint, *wide)).sql
        reads = default.count("FROM events")  # events and events_session_hours
        assert reads >= 1
        assert default.count("AND is_bot = 0") == reads, endpoint
        included = builder("events", request(endpoint, *wide, ("include_bots", "1"))).sql
        assert "is_bot" not in included, endpoint
    traffic = traffic_query("events", request("traffic", *wide))
    assert "is_bot = 0" in traffic.sql.split(ROLLUP)[1].split("UNION ALL")[0]
