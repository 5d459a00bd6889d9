"""The stats endpoints (``GET /v1/stats/...``), as Faust views.

Every stats request carries ``Authorization: Bearer <read secret>``; the secret maps to one tenant
(TRACKFLOW_READ_KEYS) and every query is restricted to that tenant. Public ingest keys never grant
reads, even if one were also configured as a read secret. Parameters, SQL and answers are built
by the pure modules beside this one (params, sql, shape).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from faust.web import Request, Response
from prometheus_client import Counter, Histogram

from trackflow_app import metrics
from trackflow_app.app import app, event_store, settings
from web.read import params, shape, sql
from web.read.access import ReadView
from web.read.request import QueryError, StatsRequest

log = logging.getLogger(__name__)

READ_REQUESTS = Counter(
    "trackflow_read_requests_total",
    "Read API requests by endpoint and status",
    ["endpoint", "status"],
)
READ_SECONDS = Histogram("trackflow_read_seconds", "Read API request duration", ["endpoint"])


def counter_by_label(counter: Counter, label: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                values[sample.labels[label]] = int(sample.value)
    return values


def metric_value(metric: Any) -> int:
    for family in metric.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                return int(sample.value)
    return 0


def worker_health() -> dict[str, Any]:
    """This worker process's own counters (worker-wide, not per tenant)."""
    dead_lettered = counter_by_label(metrics.EVENTS_DEAD_LETTERED, "reason")
    return {
        "scope": "worker process",
        "dead_lettered": dict(sorted(dead_lettered.items())),
        "dead_lettered_total": sum(dead_lettered.values()),
        "sink_buffered_rows": metric_value(metrics.SINK_BUFFERED_ROWS),
        "rows_inserted": metric_value(metrics.ROWS_INSERTED),
        "insert_failures": metric_value(metrics.INSERT_FAILURES),
        "events_accepted": metric_value(metrics.EVENTS_ACCEPTED),
    }


TABLE = settings.clickhouse_table


def shape_health_here(request: StatsRequest, rows: shape.Rows) -> dict[str, Any]:
    """The tenant's figures, and this worker process's own."""
    return shape.shape_health(request, rows, worker_health())


@dataclass(frozen=True)
class Endpoint:
    """One stats endpoint: its URL, the SQL it runs and how the rows are answered. Its parameters
    are the model of the same name in ``params.PARAMS``."""

    path: str
    query: sql.QueryBuilder
    shape: shape.Shaper
    summary: str


ENDPOINTS: dict[str, Endpoint] = {
    "traffic": Endpoint(
        "/v1/stats/traffic",
        sql.traffic_query,
        shape.shape_traffic,
        "Page views, unique sessions and unique users per interval, with totals.",
    ),
    "pages": Endpoint(
        "/v1/stats/pages", sql.pages_query, shape.listed("pages"), "Top pages by page views."
    ),
    "referrers": Endpoint(
        "/v1/stats/referrers",
        sql.referrers_query,
        shape.listed("referrers"),
        "Top referring hosts by page views.",
    ),
    "breakdown": Endpoint(
        "/v1/stats/breakdown",
        sql.breakdown_query,
        shape.shape_breakdown,
        "Sessions and page views by device_type, os, browser or country.",
    ),
    "sessions": Endpoint(
        "/v1/stats/sessions",
        sql.sessions_query,
        shape.shape_sessions,
        "Session count, pages per session, bounce rate, average duration.",
    ),
    "errors": Endpoint(
        "/v1/stats/errors",
        sql.errors_query,
        shape.shape_errors,
        "JS error groups (message + source + line).",
    ),
    "error_detail": Endpoint(
        "/v1/stats/errors/detail",
        sql.error_detail_query,
        shape.shape_error_detail,
        "One error group and its latest occurrences with their stacks.",
    ),
    "performance": Endpoint(
        "/v1/stats/performance",
        sql.performance_query,
        shape.shape_performance,
        "loadTime / domContentLoaded percentiles, overall and per page.",
    ),
    "health": Endpoint(
        "/v1/stats/health",
        sql.health_query,
        shape_health_here,
        "Events stored per minute for the tenant; dead letters and sink buffer of this worker.",
    ),
}


class StatsView(ReadView):
    """Authenticate, validate, query, shape; 401/400/500 as JSON ``{"error", "message"}``."""

    endpoint: ClassVar[str]
    param_model: ClassVar[type[params.Params]]
    spec: ClassVar[Endpoint]

    async def get(self, request: Request, **kwargs: Any) -> Response:
        started = time.monotonic()
        response = await self._answer(request)
        READ_REQUESTS.labels(self.endpoint, str(response.status)).inc()
        READ_SECONDS.labels(self.endpoint).observe(time.monotonic() - started)
        return response

    async def compute(self, request: StatsRequest) -> dict[str, Any]:
        query = self.spec.query(TABLE, request)
        return self.spec.shape(request, await event_store.query(query.sql, query.parameters))

    async def _answer(self, request: Request) -> Response:
        tenant = self.tenant(request)
        try:
            now_ms = int(time.time() * 1000)
            stats_request = self.param_model.parse(tenant, request.query.items(), now_ms)
            body = await self.compute(stats_request)
        except QueryError as error:
            return self.json_response(error.body(), status=400)
        except Exception as exc:
            not_ready = self.store_not_ready(request, exc)
            if not_ready is not None:
                return not_ready
            log.exception("read query failed endpoint=%s", self.endpoint)
            return self.json_response(
                {"error": "query_failed", "message": "the store could not answer this query"},
                status=500,
            )
        return self.json_response(body, headers={"Cache-Control": "no-store"})


def register(name: str, endpoint: Endpoint) -> None:
    """Serve ``endpoint`` at its path, as a StatsView subclass of its own."""
    view = type(
        f"Stats{name.title().replace('_', '')}View",
        (StatsView,),
        {
            "endpoint": name,
            "param_model": params.PARAMS[name],
            "spec": endpoint,
            "__doc__": endpoint.summary,
        },
    )
    app.page(endpoint.path)(view)


for name, endpoint in ENDPOINTS.items():
    register(name, endpoint)
