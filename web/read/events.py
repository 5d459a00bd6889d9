"""The stored events themselves, for one tenant: ``GET /v1/query/events`` (one session's or one
user's events) and ``GET /v1/query/loss`` (events lost between browser and server)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from faust.web import Request, Response

from schemas.ddl import checked_table
from schemas.events import with_typed_keys
from trackflow_app.app import app, event_store, settings
from web.read.access import ReadView
from web.read.params import EventStreamParams, LossParams
from web.read.request import QueryError, epoch_ms


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_ms(value)
    if isinstance(value, UUID):
        return str(value)
    return value


# FINAL collapses an event's repeats within a sort key; LIMIT 1 BY also those whose
# skew-corrected times fall in different hours (the key holds the hour), keeping the earliest.
SESSION_EVENTS_SQL = """
SELECT *
FROM {table} FINAL
WHERE tenant_id = {{tenant:String}} AND {column} = {{value:String}}
ORDER BY timestamp, event_id
LIMIT 1 BY event_id
LIMIT {{limit:UInt32}}
"""


@app.page("/v1/query/events")
class EventStreamView(ReadView):
    """The raw event stream of one session or one user (read secret required)."""

    async def get(self, request: Request, **kwargs: Any) -> Response:
        tenant = self.tenant(request)
        try:
            params = EventStreamParams.validated(request.query.items())
            column, value = params.subject()
        except QueryError as error:
            return self.json_response(error.body(), status=400)
        sql = SESSION_EVENTS_SQL.format(
            table=checked_table(settings.clickhouse_table), column=column
        )
        # One row past the limit tells a cut-off stream from one that fits exactly.
        parameters = {"tenant": tenant, "value": value, "limit": params.limit + 1}
        rows = await event_store.query(sql, parameters)
        events = [{k: json_value(v) for k, v in row.items()} for row in rows[: params.limit]]
        for event in events:
            event["properties"] = with_typed_keys(event["event_type"], event["properties"] or {})
        return self.json_response({"events": events, "truncated": len(rows) > params.limit})


# Each tracker numbers a session's events 1, 2, 3...; a number never seen below the session's
# highest one is an event lost between browser and server (losses after the last seen event
# cannot be told apart from a session that ended). Another sender may number from 0 (the
# schema takes any seq >= 0): a session whose 0 arrived expects 0 too, so it never counts a
# negative loss. The sessions are those with an event in the window, each counted whole: its
# numbers from before the window are seen too (up to a day before it), so they are not taken
# for losses.
LOSS_SQL = """
SELECT browser, count() AS sessions, sum(seen) AS received, sum(expected - seen) AS lost
FROM (
    SELECT session_id, any(browser) AS browser, uniqExact(seq) AS seen,
           max(seq) + (min(seq) = 0) AS expected
    FROM {table}
    WHERE tenant_id = {{tenant:String}} AND seq IS NOT NULL
      AND timestamp >= now64(3) - toIntervalHour({{hours:UInt32}} + 24)
    GROUP BY session_id
    HAVING max(timestamp) >= now64(3) - toIntervalHour({{hours:UInt32}})
)
GROUP BY browser
ORDER BY lost DESC, browser
"""


@app.page("/v1/query/loss")
class LossView(ReadView):
    """Events lost between browser and server, per browser, from per-session sequence gaps."""

    async def get(self, request: Request, **kwargs: Any) -> Response:
        tenant = self.tenant(request)
        try:
            hours = LossParams.validated(request.query.items()).hours
        except QueryError as error:
            return self.json_response(error.body(), status=400)
        sql = LOSS_SQL.format(table=checked_table(settings.clickhouse_table))
        rows = await event_store.query(sql, {"tenant": tenant, "hours": hours})
        lost = sum(int(r["lost"]) for r in rows)
        received = sum(int(r["received"]) for r in rows)
        return self.json_response(
            {"hours": hours, "received": received, "lost": lost, "by_browser": rows}
        )
