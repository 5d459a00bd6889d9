"""Edge group commit: POSTs that arrive within a few milliseconds share one raw Kafka record.

Every raw record costs the same per-record work however few events it holds: the producer's
append, the consumer thread's hand-off to the event loop, Faust's stream and ack bookkeeping and
the validate stage's decode. Sharing a record spreads that over several requests.

Each request is still answered only once the record holding its batch is acknowledged (acks=all),
and a write that fails fails every request in it (each gets its 503 and its client retries). A
group record is a JSON array of raw batches; the validate stage reads both that and a single
batch (what dead-letter replay and earlier versions write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# Sends one record value and returns the delivery future (aiokafka's ``send``).
Send = Callable[[bytes], Awaitable[Awaitable[Any]]]
# Called when the record holding a value has been handed to the producer.
OnSent = Callable[[], None]


def _no_op() -> None:
    pass


def _retrieve(waiter: asyncio.Future[None]) -> None:
    # A request that timed out no longer awaits its waiter: read the error so that asyncio
    # does not log it as never retrieved (the request already answered 503).
    if not waiter.cancelled():
        waiter.exception()


def group_value(values: list[bytes]) -> bytes:
    """One record value for raw batches that share a record: a lone batch stays as it is."""
    return values[0] if len(values) == 1 else b"[" + b",".join(values) + b"]"


class GroupCommitter:
    """Collects record values for ``window_s`` (or until ``max_bytes``) and writes them as one.

    ``window_s`` 0 writes each value on its own, as soon as it is handed over.
    """

    def __init__(self, send: Send, window_s: float, max_bytes: int) -> None:
        self._send = send
        self.window_s = window_s
        self.max_bytes = max_bytes
        self._values: list[bytes] = []
        self._waiters: list[tuple[asyncio.Future[None], OnSent]] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()

    async def write(self, value: bytes, on_sent: OnSent = _no_op) -> None:
        """Return once Kafka acknowledged the record holding ``value``; raise its error if not."""
        if not self.window_s or len(value) >= self.max_bytes:
            delivery = await self._send(value)
            on_sent()
            await asyncio.shield(delivery)  # a caller's timeout must not cancel the producer's
            return
        if self._values and self._size + len(value) + 1 > self.max_bytes:
            self.flush()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiter.add_done_callback(_retrieve)
        self._values.append(value)
        self._waiters.append((waiter, on_sent))
        self._size += len(value) + 1
        if self._timer is None:
            self._timer = loop.call_later(self.window_s, self.flush)
        await asyncio.shield(waiter)

    def flush(self) -> None:
        """Write what is collected now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._values:
            return
        values, waiters = self._values, self._waiters
        self._values, self._waiters, self._size = [], [], 0
        task = asyncio.get_running_loop().create_task(self._write_group(values, waiters))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_group(
        self, values: list[bytes], waiters: list[tuple[asyncio.Future[None], OnSent]]
    ) -> None:
        try:
            delivery = await self._send(group_value(values))
            for _, on_sent in waiters:
                on_sent()
            await delivery
        except asyncio.CancelledError:
            for waiter, _ in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            for waiter, _ in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter, _ in waiters:
            if not waiter.done():
                waiter.set_result(None)
