"""The HTTP errors aiohttp answers by itself (a path no route serves, a method a route does not
take) as JSON bodies naming the problem, like every other error the worker answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web as aioweb

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def error_code(reason: str) -> str:
    """``"Method Not Allowed"`` -> ``"method_not_allowed"``."""
    return "_".join(reason.lower().split())


def json_error(error: aioweb.HTTPException, method: str, path: str) -> aioweb.Response:
    body = {"error": error_code(error.reason), "message": f"{method} {path[:200]}: {error.reason}"}
    allow = error.headers.get("Allow")
    return aioweb.Response(
        body=orjson.dumps(body),
        status=error.status,
        content_type="application/json",
        headers={"Allow": allow} if allow else None,
    )


@aioweb.middleware
async def json_http_errors(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    try:
        return await handler(request)
    except aioweb.HTTPException as error:
        if error.status < 400 or error.content_type == "application/json":
            raise
        return json_error(error, request.method, request.path)
