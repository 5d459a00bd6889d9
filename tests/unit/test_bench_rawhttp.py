"""The load generator's lean HTTP client (bench/rawhttp.py) against a real aiohttp server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench.loadgen import main_async, parse_args
from bench.rawhttp import Pool, request_head
from bench.workload import TS_SENTINEL_BYTES


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[tuple[str, bytes, str]]]]:
    seen: list[tuple[str, bytes, str]] = []

    async def batch(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.path, body, request.headers["X-Forwarded-For"]))
        if body == b"close":
            return web.Response(status=202, headers={"Connection": "close"})
        if body == b"teapot":
            return web.json_response({"error": "no"}, status=418)
        return web.json_response({"status": "accepted"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/batch", batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1/batch", seen
    await runner.cleanup()


def test_request_head_counts_the_body() -> None:
    head = request_head("h:1", "/p", {"X-A": "b"}, 5)
    assert head == b"POST /p HTTP/1.1\r\nHost: h:1\r\nX-A: b\r\nContent-Length: 5\r\n\r\n"


async def test_each_request_is_answered_once_with_its_status(
    server: tuple[str, list[tuple[str, bytes, str]]],
) -> None:
    url, seen = server
    bodies = [b"one", b"teapot", b"close", b"four", b"five", b"close", b"seven"] * 5
    answers: dict[int, tuple[str, bool]] = {}

    def request(i: int) -> bytes:
        head = request_head("x", "/v1/batch", {"X-Forwarded-For": f"10.0.0.{i}"}, len(bodies[i]))
        return head + bodies[i]

    def done(i: int, status: str, ok: bool) -> None:
        assert i not in answers, f"request {i} answered twice"
        answers[i] = (status, ok)

    pool = Pool(url, 3, request, done)
    for i in range(len(bodies)):
        pool.submit(i)
    await pool.drain(10.0)

    assert len(answers) == len(bodies)
    for i, body in enumerate(bodies):
        assert answers[i] == (("418", False) if body == b"teapot" else ("202", True))
    # The server saw every request once, with its own body and header, across reconnections.
    assert sorted((b, ip) for _, b, ip in seen) == sorted(
        (b, f"10.0.0.{i}") for i, b in enumerate(bodies)
    )


async def test_a_refused_connection_fails_the_request() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answers: list[str] = []
    pool = Pool(f"http://127.0.0.1:{port}/", 2, lambda i: b"", lambda i, st, ok: answers.append(st))
    pool.submit(0)
    pool.submit(1)
    await pool.drain(2.0)
    assert answers == ["ClientConnectorError", "ClientConnectorError"]


async def test_an_unanswered_request_times_out() -> None:
    accepted: list[socket.socket] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    port = listener.getsockname()[1]
    accept = loop.create_task(loop.sock_accept(listener))
    answers: list[str] = []
    pool = Pool(
        f"http://127.0.0.1:{port}/", 1, lambda i: b"x", lambda i, st, ok: answers.append(st)
    )
    pool.submit(0)
    conn, _ = await accept
    accepted.append(conn)
    await pool.drain(0.3)
    assert answers == ["TimeoutError"]
    conn.close()
    listener.close()


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
async def test_the_open_loop_sends_every_scheduled_batch(
    server: tuple[str, list[tuple[str, bytes, str]]], client: str
) -> None:
    url, seen = server
    args = parse_args(
        [
            "--url",
            url,
            "--rate",
            "2000",
            "--duration",
            "0.5",
            "--connections",
            "4",
            "--tenants",
            "3",
            "--sessions",
            "20",
            "--client",
            client,
        ]
    )
    result = await main_async(args)
    assert result["client"] == client
    assert result["requests"] == len(seen) > 0
    assert result["requests_ok"] == result["requests"]
    assert result["events_ok"] == result["events_sent"] >= 900
    # The send time replaced the placeholder in every body.
    assert all(b"sentAt" in body and TS_SENTINEL_BYTES not in body for _, body, _ in seen)
