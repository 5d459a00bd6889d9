"""The dashboard (``GET /dashboard``): static files from web/dashboard/, built on the stats
endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faust.web import Request, Response

from trackflow_app.app import app
from web.views import JsonView

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
DASHBOARD_ASSETS: dict[str, tuple[str, str]] = {
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "application/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}
DASHBOARD_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


class DashboardView(JsonView):
    async def asset(self, name: str) -> Response:
        entry = DASHBOARD_ASSETS.get(name)
        if entry is None:
            return self.json_response(
                {"error": "not_found", "message": "no such dashboard file"}, status=404
            )
        filename, content_type = entry
        try:
            body = (DASHBOARD_DIR / filename).read_bytes()
        except FileNotFoundError:
            return self.json_response(
                {"error": "not_found", "message": f"web/dashboard/{filename} is missing"},
                status=404,
            )
        # The charset rides in the header: aiohttp refuses it inside content_type=.
        return self.bytes(body, headers={**DASHBOARD_HEADERS, "Content-Type": content_type})


@app.page("/dashboard")
class DashboardIndexView(DashboardView):
    async def get(self, request: Request, **kwargs: Any) -> Response:
        return await self.asset("index.html")


@app.page("/dashboard/{name}")
class DashboardAssetView(DashboardView):
    async def get(self, request: Request, name: str = "", **kwargs: Any) -> Response:
        return await self.asset(name)
