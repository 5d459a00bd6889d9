"""HTTP edge of the worker: ingest, health, tracker script, metrics (Faust views).

The read API lives in web/read/.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, cast

import orjson
from aiohttp import web as aioweb
from aiokafka.errors import MessageSizeTooLargeError
from faust.assignor import PartitionAssignor
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trackflow_app import health, metrics
from trackflow_app.app import app, event_store, raw_topic, settings
from trackflow_app.kafka import configure_web_handler, explain_listen_errors
from web.compressed import PrecompressedFile, etag_matches
from web.edge import (
    EdgeError,
    EdgeLimits,
    anonymize_ip,
    authenticate,
    batch_record,
    check_origin,
    client_ip,
    decode_request,
    encode_record,
)
from web.group_commit import GroupCommitter
from web.http_errors import answer_routing_errors_as_json
from web.phases import PhaseTimer
from web.ratelimit import Limited, RateLimits

log = logging.getLogger(__name__)

LIMITS = EdgeLimits(
    max_body_bytes=settings.max_body_bytes,
    max_decompressed_bytes=settings.max_decompressed_bytes,
    max_events_per_batch=settings.max_events_per_batch,
)
RATE_LIMITS = RateLimits(settings.rate_limit_per_ip, settings.rate_limit_per_tenant)
metrics.RATE_LIMIT_GROUP_SIZE.set(1)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's handler type is a forward ref
async def share_tenant_limits(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    """After each rebalance, hold 1/N of every tenant limit here, N being the workers in the
    raw topic's consumer group: Faust's assignment names every member (by web URL), those with
    no partition too."""
    if settings.rate_limit_scope != "group":
        return
    assignor = cast(PartitionAssignor, app.assignor)
    members = len(assignor.external_topic_distribution) or 1
    if members != RATE_LIMITS.group_size:
        log.info("tenant rate limits shared by %d workers", members)
    RATE_LIMITS.set_group_size(members)
    metrics.RATE_LIMIT_GROUP_SIZE.set(members)


TRACKER_BUNDLE = Path(__file__).resolve().parent / "tracker" / "dist" / "trackflow.min.js"
# Served as brotli, gzip or as is, by Accept-Encoding; compressed again when `make tracker`
# rebuilds the bundle.
TRACKER_SCRIPT = PrecompressedFile(TRACKER_BUNDLE)


aiohttp_web: Any = app.web  # Faust's aiohttp driver, which holds the aiohttp Application
answer_routing_errors_as_json(aiohttp_web.web_app.router)
configure_web_handler(
    app.web,
    # /v1/batch sees gzip bodies as sent, so decompression stays bounded (gzip-bomb safe):
    # aiohttp would otherwise inflate request bodies itself, without our size bound.
    auto_decompress=False,
    # aiohttp arms this timer when a connection opens and again after each response: a client
    # that has not sent a whole request's headers by then, or sits idle, is disconnected.
    keepalive_timeout=settings.http_idle_timeout_s,
)
explain_listen_errors(app.web, settings.web_bind, settings.web_port)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, X-TrackFlow-Key",
    "Access-Control-Max-Age": "86400",
    "Access-Control-Expose-Headers": "Retry-After",
}


class JsonView(View):
    async def dispatch(self, request: Any) -> Any:
        try:
            return await super().dispatch(request)
        except Exception as exc:  # a JSON answer, never aiohttp's HTML 500 page
            if isinstance(exc, aioweb.HTTPException):
                raise
            return self.failure_response(request, exc)

    def failure_response(self, request: Any, exc: Exception) -> Response:
        """The answer to a request that raised: 500, logged with its traceback."""
        log.exception("request failed path=%s", getattr(request, "path", "?"), exc_info=exc)
        return self.json_response(
            {"error": "internal_error", "message": f"the request failed: {type(exc).__name__}"},
            status=500,
        )

    def json_response(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return self.bytes(
            orjson.dumps(body), content_type="application/json", status=status, headers=headers
        )

    def edge_error(self, error: EdgeError, headers: dict[str, str] | None = None) -> Response:
        metrics.REQUESTS_REJECTED.labels(str(error.status), error.code).inc()
        return self.json_response(error.body(), status=error.status, headers=headers)


class RateLimited(EdgeError):
    def __init__(self, limited: Limited) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"{limited.scope} rate limit {limited.limit} exceeded; retry after "
            f"{limited.retry_after_s} s",
        )
        self.retry_after_s = limited.retry_after_s


def raise_if_limited(limited: Limited | None) -> None:
    if limited is not None:
        raise RateLimited(limited)


async def read_body(request: aioweb.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes of body, failing early on a declared or actual excess."""
    if request.content_length is not None and request.content_length > limit:
        raise EdgeError(413, "payload_too_large", f"body exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise EdgeError(413, "payload_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def send_raw(value: bytes) -> Any:
    delivery = await app.producer.send(raw_topic.get_topic_name(), None, value, None, None, None)
    metrics.RAW_RECORDS_WRITTEN.inc()
    return delivery


RAW_WRITES = GroupCommitter(
    send_raw, settings.edge_group_window_ms / 1000, settings.edge_group_max_bytes
)


async def produce_acknowledged(value: bytes, timer: PhaseTimer) -> None:
    """Write to the raw topic and return only once Kafka acknowledged it (acks=all)."""
    async with asyncio.timeout(settings.produce_timeout_s):
        await RAW_WRITES.write(value, on_sent=lambda: timer.mark("enqueue"))
        timer.mark("ack")
    metrics.PRODUCE_SECONDS.observe(timer.phases["enqueue"] + timer.phases["ack"])


@app.page("/v1/batch")
class BatchView(JsonView):
    async def options(self, request: Request, **kwargs: Any) -> Response:
        return self.bytes(b"", status=204, headers=CORS_HEADERS)

    async def post(self, faust_request: Request, **kwargs: Any) -> Response:
        request = cast(aioweb.Request, faust_request)  # Faust's aiohttp driver passes these
        received_at = int(time.time() * 1000)
        timer = PhaseTimer()
        ip = client_ip(request.remote, request.headers, settings.trusted_proxy_networks)
        try:
            raise_if_limited(RATE_LIMITS.check_ip(ip))
            async with asyncio.timeout(settings.body_timeout_s):
                body = await read_body(request, settings.max_body_bytes)
            timer.mark("body")
            envelope = decode_request(
                body,
                request.headers.get("Content-Type", ""),
                request.headers.get("Content-Encoding", ""),
                LIMITS,
            )
            api_key = authenticate(
                envelope.events, request.headers.get("X-TrackFlow-Key"), settings.tenant_keys
            )
            check_origin(request.headers.get("Origin"), api_key, settings.allowed_origins)
            raise_if_limited(RATE_LIMITS.check_tenant(api_key, len(envelope.events)))
            record = batch_record(
                envelope,
                api_key,
                received_at,
                anonymize_ip(ip) if settings.anonymize_ip else ip,
                request.headers.get("User-Agent", ""),
            )
            value = encode_record(record)
            accepted, dropped = len(envelope.events), envelope.dropped
            # Parsed, a body of 4 MB can be 20 times larger: hold only its encoding while Kafka
            # acknowledges it.
            del body, envelope, record
            timer.mark("decode")
        except TimeoutError:
            error = EdgeError(
                408, "body_timeout", f"the body did not arrive within {settings.body_timeout_s} s"
            )
            return self.edge_error(error, CORS_HEADERS)
        except ConnectionResetError:
            # The client went away mid-body: nothing was accepted, and no one reads the answer.
            log.info("client closed the connection before its body ended; nothing accepted")
            error = EdgeError(400, "body_incomplete", "the connection closed before the body ended")
            return self.edge_error(error, CORS_HEADERS)
        except RateLimited as error:
            headers = {**CORS_HEADERS, "Retry-After": str(error.retry_after_s)}
            return self.edge_error(error, headers)
        except EdgeError as error:
            return self.edge_error(error, CORS_HEADERS)
        try:
            await produce_acknowledged(value, timer)
        except MessageSizeTooLargeError:
            too_big = EdgeError(
                413, "payload_too_large", "the batch is larger than the event log accepts"
            )
            return self.edge_error(too_big, CORS_HEADERS)
        except Exception as exc:
            log.warning("kafka write failed, answering 503: %r", exc)
            metrics.REQUESTS_REJECTED.labels("503", "kafka_unavailable").inc()
            return self.json_response(
                {
                    "error": "kafka_unavailable",
                    "message": "the event log is unavailable; retry after the given delay",
                },
                status=503,
                headers={**CORS_HEADERS, "Retry-After": str(settings.retry_after_s)},
            )
        timer.report(settings.slow_request_ms / 1000)
        metrics.BATCHES_ACCEPTED.inc()
        metrics.EVENTS_ACCEPTED.inc(accepted)
        if dropped:
            metrics.EVENTS_DROPPED_BY_CLIENT.inc(dropped)
        return self.json_response(
            {"status": "accepted", "accepted": accepted},
            status=202,
            headers=CORS_HEADERS,
        )


@app.page("/healthz")
class HealthView(JsonView):
    async def get(self, request: Request, **kwargs: Any) -> Response:
        return self.json_response({"status": "ok"})


async def broker_reachable() -> bool:
    for hostport in settings.kafka_bootstrap.split(","):
        host, _, port = hostport.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2.0)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


def tables_pending() -> bool:
    """This worker's sink makes or checks the store's tables as it starts; until it has, reads
    would fail."""
    return settings.sink_enabled and not event_store.schema_ready


@app.page("/readyz")
class ReadyView(JsonView):
    async def get(self, request: Request, **kwargs: Any) -> Response:
        kafka_ok = await broker_reachable()
        if not settings.store_on_this_worker:
            # An ingest-only worker never opens the embedded store (another process owns it).
            store_state: bool | str = "not_used_by_this_worker"
            ready = kafka_ok
        else:
            try:
                store_state = await asyncio.wait_for(event_store.ping(), 5.0)
            except Exception:
                store_state = False
            if store_state is True and tables_pending():
                store_state = "creating_tables"
            ready = kafka_ok and store_state is True
        stalled = health.problems()
        ready = ready and not stalled
        return self.json_response(
            {
                "status": "ready" if ready else "unavailable",
                "kafka": kafka_ok,
                "clickhouse": store_state,
                "stalled": stalled,
            },
            status=200 if ready else 503,
        )


@app.page("/metrics")
class MetricsView(View):
    async def get(self, request: Request, **kwargs: Any) -> Response:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/tracker.js")
class TrackerView(JsonView):
    async def get(self, request: Request, **kwargs: Any) -> Response:
        try:
            bundle = TRACKER_SCRIPT.load()
        except FileNotFoundError:
            return self.json_response(
                {
                    "error": "tracker_not_built",
                    "message": "web/tracker/dist/trackflow.min.js is missing; run `make tracker`",
                },
                status=404,
            )
        variant = bundle.choose(request.headers.get("Accept-Encoding"))
        headers = {
            "Cache-Control": "public, max-age=3600, stale-while-revalidate=86400",
            "Access-Control-Allow-Origin": "*",
            "ETag": variant.etag,
            "Vary": "Accept-Encoding",
        }
        if etag_matches(request.headers.get("If-None-Match"), variant.etag):
            return self.bytes(b"", status=304, headers=headers)
        if variant.coding != "identity":
            headers["Content-Encoding"] = variant.coding
        return self.bytes(variant.body, content_type="application/javascript", headers=headers)
