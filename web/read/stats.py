"""The stats endpoints (``GET /v1/stats/...``), as Faust views.

Every stats request carries ``Authorization: Bearer <read secret>``; the secret maps to one tenant
(TRACKFLOW_READ_KEYS) and every query is restricted to that tenant. Public ingest keys never grant
reads, even if one were also configured as a read secret. Parameters, SQL and answers are built
by the pure modules beside this one (params, sql, shape).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from faust.web import Request, Response
from prometheus_client import Counter, Histogram

from trackflow_app import metrics
from trackflow_app.app import app, event_store, settings
from web.read import params, shape, sql
from web.read.access import ReadView, read_tenant
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


async def run(query: sql.Query) -> list[dict[str, Any]]:
    return await event_store.query(query.sql, query.parameters)


class StatsView(ReadView):
    """Authenticate, validate, query, shape; 401/400/500 as JSON ``{"error", "message"}``."""

    endpoint: ClassVar[str]

    async def compute(self, request: StatsRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def get(self, request: Request, **kwargs: Any) -> Response:
        started = time.monotonic()
        response = await self._answer(request)
        READ_REQUESTS.labels(self.endpoint, str(response.status)).inc()
        READ_SECONDS.labels(self.endpoint).observe(time.monotonic() - started)
        return response

    async def _answer(self, request: Request) -> Response:
        tenant = read_tenant(request.headers.get("Authorization", ""))
        if tenant is None:
            return self.unauthorized()
        try:
            stats_request = params.parse_request(
                self.endpoint, tenant, request.query.items(), int(time.time() * 1000)
            )
            body = await self.compute(stats_request)
        except QueryError as error:
            return self.json_response(error.body(), status=400)
        except Exception:
            log.exception("read query failed endpoint=%s", self.endpoint)
            return self.json_response(
                {"error": "query_failed", "message": "the store could not answer this query"},
                status=500,
            )
        return self.json_response(body, headers={"Cache-Control": "no-store"})


def stats_page(
    path: str, endpoint: str
) -> Callable[[Callable[[StatsRequest], Awaitable[dict[str, Any]]]], type[StatsView]]:
    """Register ``compute`` as the GET handler of ``path``."""

    def register(compute: Callable[[StatsRequest], Awaitable[dict[str, Any]]]) -> type[StatsView]:
        async def method(self: StatsView, request: StatsRequest) -> dict[str, Any]:
            return await compute(request)

        view = type(
            f"Stats{endpoint.title().replace('_', '')}View",
            (StatsView,),
            {"endpoint": endpoint, "compute": method, "__doc__": compute.__doc__},
        )
        app.page(path)(view)
        return view

    return register


TABLE = settings.clickhouse_table


@stats_page("/v1/stats/traffic", "traffic")
async def traffic(request: StatsRequest) -> dict[str, Any]:
    """Page views, unique sessions and unique users per interval, with totals."""
    return shape.shape_traffic(request, await run(sql.traffic_query(TABLE, request)))


@stats_page("/v1/stats/pages", "pages")
async def pages(request: StatsRequest) -> dict[str, Any]:
    """Top pages by page views."""
    return shape.shape_list(request, "pages", await run(sql.pages_query(TABLE, request)))


@stats_page("/v1/stats/referrers", "referrers")
async def referrers(request: StatsRequest) -> dict[str, Any]:
    """Top referring hosts by page views."""
    return shape.shape_list(request, "referrers", await run(sql.referrers_query(TABLE, request)))


@stats_page("/v1/stats/breakdown", "breakdown")
async def breakdown(request: StatsRequest) -> dict[str, Any]:
    """Sessions and page views by device_type, os, browser or country."""
    return shape.shape_breakdown(request, await run(sql.breakdown_query(TABLE, request)))


@stats_page("/v1/stats/sessions", "sessions")
async def sessions(request: StatsRequest) -> dict[str, Any]:
    """Session count, pages per session, bounce rate, average duration."""
    return shape.shape_sessions(request, await run(sql.sessions_query(TABLE, request)))


@stats_page("/v1/stats/errors", "errors")
async def errors(request: StatsRequest) -> dict[str, Any]:
    """JS error groups (message + source + line)."""
    return shape.shape_errors(request, await run(sql.errors_query(TABLE, request)))


@stats_page("/v1/stats/errors/detail", "error_detail")
async def error_detail(request: StatsRequest) -> dict[str, Any]:
    """One error group and its latest occurrences with their stacks."""
    return shape.shape_error_detail(request, await run(sql.error_detail_query(TABLE, request)))


@stats_page("/v1/stats/performance", "performance")
async def performance(request: StatsRequest) -> dict[str, Any]:
    """loadTime / domContentLoaded percentiles, overall and per page."""
    return shape.shape_performance(request, await run(sql.performance_query(TABLE, request)))


@stats_page("/v1/stats/health", "health")
async def health(request: StatsRequest) -> dict[str, Any]:
    """Events stored per minute for the tenant; dead letters and sink buffer of this worker."""
    rows = await run(sql.health_query(TABLE, request))
    return shape.shape_health(request, rows, worker_health())
