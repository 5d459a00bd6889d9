"""aiohttp's own 404 and 405 answers, as JSON (web.http_errors), on a real aiohttp server."""

from __future__ import annotations

from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer

from web.http_errors import answer_routing_errors_as_json, error_code


async def accepted(request: aioweb.Request) -> aioweb.Response:
    return aioweb.json_response({"status": "accepted"}, status=202)


async def refused(request: aioweb.Request) -> aioweb.Response:
    raise aioweb.HTTPUnauthorized(text='{"error": "mine"}', content_type="application/json")


async def test_unrouted_paths_and_methods_are_answered_as_json() -> None:
    server = aioweb.Application()
    answer_routing_errors_as_json(server.router)
    server.router.add_post("/v1/batch", accepted)
    server.router.add_get("/v1/secret", refused)
    async with TestClient(TestServer(server)) as client:
        ok = await client.post("/v1/batch")
        assert ok.status == 202 and await ok.json() == {"status": "accepted"}

        wrong_method = await client.get("/v1/batch")
        assert wrong_method.status == 405
        assert wrong_method.content_type == "application/json"
        assert wrong_method.headers["Allow"] == "POST"
        assert await wrong_method.json() == {
            "error": "method_not_allowed",
            "message": "GET /v1/batch: Method Not Allowed",
        }

        missing = await client.post("/v1/batches")
        assert missing.status == 404 and missing.content_type == "application/json"
        assert (await missing.json())["error"] == "not_found"

        # A handler's own JSON error goes through unchanged.
        own = await client.get("/v1/secret")
        assert own.status == 401 and await own.json() == {"error": "mine"}


def test_error_code() -> None:
    assert error_code("Request Entity Too Large") == "request_entity_too_large"
