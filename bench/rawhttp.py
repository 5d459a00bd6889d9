"""A lean HTTP/1.1 client for the load generator: keep-alive connections as asyncio protocols,
requests written as prepared bytes, answers read by httptools' C parser, no task per request.

The benchmark's generator shares the machine's two cores with the workers and the broker, so
every microsecond it spends per request is taken from the pipeline it measures. aiohttp's client
spent ~34 CPU-µs per event (~340 per request of 10 events) at the highest steps of a full run;
this client does the same work (the same bodies, headers, keep-alive pool and open-loop
schedule) with a fraction of that (`bench/tuning.md`, "A leaner load generator").

A pool holds at most ``limit`` connections to one host. A request goes to an idle connection or
waits in the pool's queue, as in aiohttp's pooled client, so a slow server shows as latency.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

# (request index, status text such as "202" or an error's name, accepted)
Done = Callable[[int, str, bool], None]


def request_head(host: str, path: str, headers: dict[str, str], body_length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {body_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.in_flight: int | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.pool.ready(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.fail("ClientResponseError")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.fail("ServerDisconnectedError")
        self.pool.lost(self)

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_complete(self) -> None:
        index, self.in_flight = self.in_flight, None
        status = self.parser.get_status_code()
        if index is not None:
            self.pool.done(index, str(status), status == 202)
        if not self.parser.should_keep_alive():
            self.close()
        else:
            self.pool.ready(self)

    # -- the pool's side --------------------------------------------------------------------
    def send(self, index: int, data: bytes) -> None:
        assert self.transport is not None
        self.in_flight = index
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def fail(self, reason: str) -> None:
        index, self.in_flight = self.in_flight, None
        if index is not None:
            self.pool.done(index, reason, False)


class Pool:
    """Keep-alive connections to one URL's host; ``submit`` queues a request by its index."""

    def __init__(
        self,
        url: str,
        limit: int,
        request_bytes: Callable[[int], bytes],
        done: Done,
        next_request: Callable[[], int | None] | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.limit = limit
        self.request_bytes = request_bytes
        self._done = done
        # A closed loop (saturating mode) asks for its next request when a connection frees.
        self.next_request = next_request
        self.queue: deque[int] = deque()
        self.idle: list[_Connection] = []
        self.connections: set[_Connection] = set()
        self.open = 0  # connected or connecting
        self.in_flight = 0
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.get_running_loop()

    def submit(self, index: int) -> None:
        self.in_flight += 1
        if self.idle:
            self._send(self.idle.pop(), index)
            return
        self.queue.append(index)
        if self.open < self.limit:
            self._connect()

    def start_closed_loops(self) -> None:
        for _ in range(self.limit):
            self._connect()

    def done(self, index: int, status: str, ok: bool) -> None:
        self.in_flight -= 1
        self._done(index, status, ok)

    def ready(self, conn: _Connection) -> None:
        self.connections.add(conn)
        if self.closing:
            conn.close()
            return
        if self.queue:
            self._send(conn, self.queue.popleft())
            return
        if self.next_request is not None:
            index = self.next_request()
            if index is not None:
                self.in_flight += 1
                self._send(conn, index)
                return
        self.idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        self.open -= 1
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if not self.closing and (self.queue or self.next_request is not None):
            self._connect()

    def _send(self, conn: _Connection, index: int) -> None:
        conn.send(index, self.request_bytes(index))

    def _connect(self) -> None:
        self.open += 1
        task = self.loop.create_task(self._open_connection())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_connection(self) -> None:
        try:
            await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            self.open -= 1
            # As aiohttp's pool would: the request that waited for this connection fails.
            if self.queue:
                self.done(self.queue.popleft(), "ClientConnectorError", False)
            elif self.next_request is not None and not self.closing:
                index = self.next_request()
                if index is not None:
                    self.in_flight += 1
                    self.done(index, "ClientConnectorError", False)
            if not self.closing and (self.queue or self.next_request is not None):
                await asyncio.sleep(0.05)
                self._connect()

    async def drain(self, timeout: float) -> None:
        """Wait until every submitted request is answered; after ``timeout`` the rest fail as
        timed out. Then close every connection."""
        deadline = time.monotonic() + timeout
        while self.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.closing = True
        for task in self._tasks:
            task.cancel()
        while self.queue:
            self.done(self.queue.popleft(), "TimeoutError", False)
        for conn in list(self.connections):
            conn.fail("TimeoutError")
            conn.close()
        self.idle.clear()
