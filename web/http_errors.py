"""The HTTP errors aiohttp answers by itself (a path no route serves, a method a route does not
take) as JSON bodies naming the problem, like every other error the worker answers.

The router's failed match is replaced, rather than every response passing through a
middleware: aiohttp runs a request with middlewares on a slower path (~8 CPU-µs per request
measured here), and only unmatched requests need this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web as aioweb
from aiohttp.web_urldispatcher import MatchInfoError, UrlDispatcher, UrlMappingMatchInfo


def error_code(reason: str) -> str:
    """``"Method Not Allowed"`` -> ``"method_not_allowed"``."""
    return "_".join(reason.lower().split())


def json_error(error: aioweb.HTTPException, method: str, path: str) -> aioweb.HTTPException:
    """The same error with a JSON body; other errors than 404 and 405 as they are."""
    body = orjson.dumps(
        {"error": error_code(error.reason), "message": f"{method} {path[:200]}: {error.reason}"}
    ).decode()
    if isinstance(error, aioweb.HTTPMethodNotAllowed):
        return aioweb.HTTPMethodNotAllowed(
            method, error.allowed_methods, text=body, content_type="application/json"
        )
    if isinstance(error, aioweb.HTTPNotFound):
        return aioweb.HTTPNotFound(text=body, content_type="application/json")
    return error


def answer_routing_errors_as_json(router: UrlDispatcher) -> None:
    resolve: Callable[[aioweb.Request], Awaitable[UrlMappingMatchInfo]] = router.resolve

    async def resolve_with_json_errors(request: aioweb.Request) -> UrlMappingMatchInfo:
        match_info = await resolve(request)
        if isinstance(match_info, MatchInfoError):
            error = json_error(match_info.http_exception, request.method, request.path)
            return MatchInfoError(error)
        return match_info

    router.resolve = resolve_with_json_errors  # type: ignore[method-assign]
