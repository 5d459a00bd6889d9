"""Read request parameters: one pydantic model per stats endpoint turns a query string's
(name, value) pairs into a StatsRequest.

Every parameter is one string. A name given twice reaches the model as the list of its values,
which no field accepts; an unknown name is refused by ``extra="forbid"``. Validators raise
QueryError with the message the client sees, and ``query_error`` words pydantic's own findings
(unknown, repeated, oversized parameters) the same way: a 400 ``{"error", "message"}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Self, TypedDict

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails, PydanticUseDefault

from web.read.request import (
    DAY_MS,
    DEFAULT_LIMIT,
    DIMENSIONS,
    FILTERS,
    FINGERPRINT,
    HOUR_MS,
    INTERVALS,
    MINUTE_MS,
    QueryError,
    StatsRequest,
    TimeRange,
    epoch_ms,
)

DEFAULT_RANGE_MS = 7 * DAY_MS
MAX_RANGE_DAYS = 400
MAX_RANGE_MS = MAX_RANGE_DAYS * DAY_MS
MAX_BUCKETS = 1500
# Accepted instants: epoch-second values sent as milliseconds would land in 1970 and are refused.
MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TIME_MS = 7_258_118_400_000  # 2200-01-01T00:00:00Z

MAX_LIMIT = 100
DEFAULT_EVENT_STREAM_LIMIT = 1000
MAX_EVENT_STREAM_LIMIT = 10_000
MAX_LOSS_HOURS = 24 * MAX_RANGE_DAYS
DEFAULT_ERROR_DETAIL_LIMIT = 20
DEFAULT_HEALTH_MINUTES = 60
MAX_HEALTH_MINUTES = 1440
MAX_FILTER_LENGTH = 2048
MAX_PARAM_LENGTH = 4096

_EPOCH_MS = re.compile(r"^-?\d{1,16}$")
# "2024-05-01T10:00:00+02:00" sent unencoded in a query string arrives with a space for "+".
_DECODED_PLUS = re.compile(r"^(.*T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")
_INTEGER = re.compile(r"^-?\d{1,9}$")
_FLAGS = {"1": True, "true": True, "0": False, "false": False}


# -- one parameter's text ------------------------------------------------------------------------
def parse_instant(value: str, name: str) -> int:
    """An instant as epoch milliseconds, from epoch ms digits or ISO-8601 (UTC when no offset)."""
    text = value.strip()
    if _EPOCH_MS.match(text):
        ms = int(text)
    else:
        match = _DECODED_PLUS.match(text)
        if match:
            text = f"{match.group(1)}+{match.group(2)}"
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise QueryError(
                f"{name} must be epoch milliseconds or an ISO-8601 time "
                f"(e.g. 2024-05-01T00:00:00Z), got {value[:64]!r}"
            ) from None
        ms = epoch_ms(moment)
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise QueryError(
            f"{name} must lie between 2000-01-01 and 2200-01-01 "
            "(epoch values are milliseconds, not seconds)"
        )
    return ms


def whole_number(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not _INTEGER.match(text):
            raise QueryError(f"{name} must be an integer")
        number = int(text)
        if not low <= number <= high:
            raise QueryError(f"{name} must be between {low} and {high}")
        return number

    return parse


def yes_no(name: str) -> Callable[[str], bool]:
    """1/true or 0/false, in any case; blank is false."""

    def parse(text: str) -> bool:
        flag = text.strip().lower()
        if flag and flag not in _FLAGS:
            raise QueryError(f"{name} must be 1, 0, true or false")
        return _FLAGS.get(flag, False)

    return parse


def check_interval(text: str) -> str:
    if text != "auto" and text not in INTERVALS:
        raise QueryError("interval must be one of minute, hour, day, auto")
    return text


def check_dimension(text: str) -> str:
    if text not in DIMENSIONS:
        raise QueryError(f"by must be one of {', '.join(DIMENSIONS)}")
    return text


def check_fingerprint(text: str) -> str:
    if not FINGERPRINT.match(text):
        raise QueryError("fingerprint must be 16 lowercase hex characters")
    return text


def from_text(parse: Callable[[str], Any]) -> BeforeValidator:
    """``parse`` applied to the parameter's text; an empty value keeps the field's default."""

    def validate(value: object) -> object:
        if not isinstance(value, str):
            return value  # a repeated parameter's list, which the field's type refuses
        if not value:
            raise PydanticUseDefault
        return parse(value)

    return BeforeValidator(validate)


# -- the time range ------------------------------------------------------------------------------
def choose_interval(span_ms: int) -> str:
    if span_ms <= 6 * HOUR_MS:
        return "minute"
    if span_ms <= 14 * DAY_MS:
        return "hour"
    return "day"


def time_range(from_ms: int | None, to_ms: int | None, interval: str, now_ms: int) -> TimeRange:
    """[from, to) in buckets of ``interval`` ("auto": by the span); by default the last 7 days."""
    to_ms = now_ms if to_ms is None else to_ms
    from_ms = to_ms - DEFAULT_RANGE_MS if from_ms is None else from_ms
    if from_ms >= to_ms:
        raise QueryError("from must be earlier than to")
    if to_ms - from_ms > MAX_RANGE_MS:
        raise QueryError(f"the time range is longer than {MAX_RANGE_DAYS} days")
    if interval == "auto":
        interval = choose_interval(to_ms - from_ms)
    chosen = TimeRange(from_ms, to_ms, interval)
    start = from_ms // chosen.step_ms * chosen.step_ms
    count = -(-(to_ms - start) // chosen.step_ms)
    if count > MAX_BUCKETS:
        raise QueryError(
            f"{count} {interval} buckets exceed the limit of {MAX_BUCKETS}; "
            "use a coarser interval or a shorter range"
        )
    return chosen


# -- the models ----------------------------------------------------------------------------------
Filter = Annotated[str, Field(max_length=MAX_FILTER_LENGTH)]
Limit = Annotated[int, from_text(whole_number("limit", 1, MAX_LIMIT))]


class Options(TypedDict, total=False):
    limit: int
    dimension: str
    fingerprint: str


class Params(BaseModel):
    """The parameters of one read endpoint: only its own, each at most once."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_PARAM_LENGTH)

    @classmethod
    def accepted(cls) -> frozenset[str]:
        return frozenset(field.alias or name for name, field in cls.model_fields.items())

    @classmethod
    def validated(cls, pairs: Iterable[tuple[str, str]]) -> Self:
        try:
            return cls.model_validate(by_name(pairs))
        except ValidationError as error:
            raise query_error(error, cls.accepted()) from None

    @classmethod
    def parse(cls, tenant: str, pairs: Iterable[tuple[str, str]], now_ms: int) -> StatsRequest:
        return cls.validated(pairs).stats_request(tenant, now_ms)

    def stats_request(self, tenant: str, now_ms: int) -> StatsRequest:
        raise NotImplementedError


class HealthParams(Params):
    minutes: Annotated[int, from_text(whole_number("minutes", 1, MAX_HEALTH_MINUTES))] = (
        DEFAULT_HEALTH_MINUTES
    )

    def stats_request(self, tenant: str, now_ms: int) -> StatsRequest:
        # Whole minutes ending with the current (partial) one.
        to_ms = (now_ms // MINUTE_MS + 1) * MINUTE_MS
        return StatsRequest(tenant, TimeRange(to_ms - self.minutes * MINUTE_MS, to_ms, "minute"))


class StatsParams(Params):
    """A time range, equality filters (one per name in FILTERS; empty means none) and the bot
    switch: what every stats endpoint but health takes."""

    from_: Annotated[int | None, from_text(partial(parse_instant, name="from"))] = Field(
        default=None, alias="from"
    )
    to: Annotated[int | None, from_text(partial(parse_instant, name="to"))] = None
    page_url: Filter = ""
    device_type: Filter = ""
    os: Filter = ""
    browser: Filter = ""
    country: Filter = ""
    include_bots: Annotated[bool, from_text(yes_no("include_bots"))] = False

    def stats_request(self, tenant: str, now_ms: int) -> StatsRequest:
        return StatsRequest(
            tenant=tenant,
            range=time_range(self.from_, self.to, self.interval_choice(), now_ms),
            filters=tuple((name, getattr(self, name)) for name in FILTERS if getattr(self, name)),
            include_bots=self.include_bots,
            **self.options(),
        )

    def interval_choice(self) -> str:
        return "auto"

    def options(self) -> Options:
        return {}


class TrafficParams(StatsParams):
    interval: Annotated[str, from_text(check_interval)] = "auto"

    def interval_choice(self) -> str:
        return self.interval


class LimitedParams(StatsParams):
    """A stats endpoint that answers the top ``limit`` rows."""

    limit: Limit = DEFAULT_LIMIT

    def options(self) -> Options:
        return {"limit": self.limit}


class BreakdownParams(LimitedParams):
    by: Annotated[str, AfterValidator(check_dimension)] = Field(default="", validate_default=True)

    def options(self) -> Options:
        return {**super().options(), "dimension": self.by}


class ErrorDetailParams(LimitedParams):
    fingerprint: Annotated[str, AfterValidator(check_fingerprint)] = Field(
        default="", validate_default=True
    )
    limit: Limit = DEFAULT_ERROR_DETAIL_LIMIT

    def options(self) -> Options:
        return {**super().options(), "fingerprint": self.fingerprint}


class EventStreamParams(Params):
    """``/v1/query/events``: one session's or one user's events, the first ``limit``."""

    session_id: str = ""
    user_id: str = ""
    limit: Annotated[int, from_text(whole_number("limit", 1, MAX_EVENT_STREAM_LIMIT))] = (
        DEFAULT_EVENT_STREAM_LIMIT
    )

    def subject(self) -> tuple[str, str]:
        """The column to match and its value: the session's or the user's id, exactly one."""
        if bool(self.session_id) == bool(self.user_id):
            raise QueryError("give session_id or user_id (one of them)")
        return ("session_id", self.session_id) if self.session_id else ("user_id", self.user_id)


class LossParams(Params):
    """``/v1/query/loss``: sessions with an event in the last ``hours``."""

    hours: Annotated[int, from_text(whole_number("hours", 1, MAX_LOSS_HOURS))] = 24


PARAMS: dict[str, type[Params]] = {
    "traffic": TrafficParams,
    "pages": LimitedParams,
    "referrers": LimitedParams,
    "breakdown": BreakdownParams,
    "sessions": StatsParams,
    "errors": LimitedParams,
    "error_detail": ErrorDetailParams,
    "performance": LimitedParams,
    "health": HealthParams,
}


def parse_request(
    endpoint: str, tenant: str, pairs: Iterable[tuple[str, str]], now_ms: int
) -> StatsRequest:
    """Validate one read request for ``endpoint`` (a key of PARAMS)."""
    return PARAMS[endpoint].parse(tenant, pairs, now_ms)


# -- from the query string, and back to the client -----------------------------------------------
def by_name(pairs: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """The query string by parameter name; a repeated name keeps the list of its values."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in grouped.items()}


def parameter_fault(problem: ErrorDetails, accepted: frozenset[str]) -> QueryError | None:
    """An unknown, repeated or oversized parameter, whatever its value says."""
    name, value = problem["loc"][0], problem["input"]
    if problem["type"] == "extra_forbidden":
        known = ", ".join(sorted(accepted))
        return QueryError(f"unknown parameter {name!r}; this endpoint accepts: {known}")
    if isinstance(value, list):
        return QueryError(f"parameter {name!r} is given more than once")
    if isinstance(value, str) and len(value) > MAX_PARAM_LENGTH:
        return QueryError(f"parameter {name!r} is longer than {MAX_PARAM_LENGTH} characters")
    return None


def value_fault(problem: ErrorDetails) -> QueryError:
    cause = problem.get("ctx", {}).get("error")
    if isinstance(cause, QueryError):  # raised by a validator above, in the client's words
        return cause
    name = problem["loc"][0]
    if problem["type"] == "string_too_long":  # only filters are held below MAX_PARAM_LENGTH
        return QueryError(f"filter {name} is longer than {MAX_FILTER_LENGTH} characters")
    return QueryError(f"{name}: {problem['msg']}")


def query_error(error: ValidationError, accepted: frozenset[str]) -> QueryError:
    """The one problem the 400 answer names. A misspelt, repeated or oversized parameter comes
    first: it is usually why a value looks wrong or missing."""
    problems = error.errors()
    for problem in problems:
        fault = parameter_fault(problem, accepted)
        if fault is not None:
            return fault
    return value_fault(problems[0])
