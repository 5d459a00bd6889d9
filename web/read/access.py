"""Who may read: a ``Bearer <read secret>`` names one tenant, and only a worker with the store
answers reads."""

from __future__ import annotations

import logging
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError
from faust.web import Response

from schemas.store_errors import is_missing_table
from trackflow_app.app import settings
from web.views import JsonView, tables_pending

log = logging.getLogger(__name__)


def read_tenant(authorization: str) -> str | None:
    """The tenant a ``Bearer <read secret>`` header grants, or None."""
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return None
    if secret in settings.tenant_keys:
        return None  # an ingest key is public: it never reads, whatever else is configured
    return settings.read_secrets.get(secret)


UNAUTHORIZED = {"error": "unauthorized", "message": "send Authorization: Bearer <read secret>"}


STORE_NOT_HERE = {
    "error": "store_not_on_this_worker",
    "message": "this worker runs without a sink (TRACKFLOW_SINK_ENABLED=false) and the embedded "
    "chDB store belongs to another process: send reads to the worker that runs the sink",
}


STORE_STARTING = {
    "error": "store_starting",
    "message": "the event store's tables are not created yet (the sink makes them as it "
    "starts): retry in a few seconds",
}
STORE_UNAVAILABLE = {
    "error": "store_unavailable",
    "message": "the event store did not answer (its server is down or unreachable): retry later",
}
# The request's key for the tenant its read secret granted.
READ_TENANT = "trackflow_read_tenant"
RETRY_SOON = {"Retry-After": "2"}
RETRY_LATER = {"Retry-After": "10"}


class ReadView(JsonView):
    """A view that reads one tenant's data: the read secret decides which tenant."""

    async def dispatch(self, request: Any) -> Any:
        # A request without a read secret is answered 401 whatever state the store is in.
        tenant = read_tenant(request.headers.get("Authorization", ""))
        if tenant is None:
            return self.unauthorized()
        request[READ_TENANT] = tenant
        if not settings.store_on_this_worker:
            return self.json_response(STORE_NOT_HERE, status=503)
        if tables_pending():
            return self.json_response(STORE_STARTING, status=503, headers=RETRY_SOON)
        return await super().dispatch(request)

    def store_not_ready(self, request: Any, exc: Exception) -> Response | None:
        """503 with Retry-After when a read failed for the store's state, not the request's."""
        # Another worker's sink makes a server's tables: until it has, reads wait for it.
        if is_missing_table(exc):
            return self.json_response(STORE_STARTING, status=503, headers=RETRY_SOON)
        if isinstance(exc, OperationalError):  # no answer from the server: not the request's fault
            log.warning("read failed path=%s: %s", getattr(request, "path", "?"), exc)
            return self.json_response(STORE_UNAVAILABLE, status=503, headers=RETRY_LATER)
        return None

    def failure_response(self, request: Any, exc: Exception) -> Response:
        return self.store_not_ready(request, exc) or super().failure_response(request, exc)

    @staticmethod
    def tenant(request: Any) -> str:
        """The tenant whose data this request may read (dispatch checked its read secret)."""
        tenant: str = request[READ_TENANT]
        return tenant

    def unauthorized(self) -> Response:
        return self.json_response(UNAUTHORIZED, status=401, headers={"WWW-Authenticate": "Bearer"})
