"""Every use TrackFlow makes of Faust's, aiokafka's and Faust's aiohttp driver's internals, in
one place (``tests/unit/test_kafka_transport.py`` fails loudly when a pinned version changes
one of them): the worker consumer's fetch size and wait, that consumer on the worker's own
event loop, an idempotent producer, the aiokafka producer inside Faust's, and the options of the
aiohttp request handler Faust builds.

Faust builds its consumer with aiokafka's ``fetch_min_bytes=1``: every fetch of the raw topic
returns as soon as one record is there and the next one goes out at once, so under load the
consumer thread, the broker and the event loop handle a fetch round trip per few raw batches.
A minimum size with a short wait lets each fetch carry many batches and bounds the delay at
low load to the wait.

Faust turns on the producer's idempotence only for exactly-once processing. With replicated
topics a produce retried after a leader change could otherwise be written twice; idempotence
(with acks=all) lets the broker drop the repeat of a batch it already has.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_kafka
from mode import Service
from mode.utils.futures import maybe_async


def fetch_tuned_transport(
    min_bytes: int, max_wait_ms: int, *, consumer_in_loop: bool = False
) -> type[faust_kafka.Transport]:
    """Faust's Kafka transport whose worker consumer fetches at least ``min_bytes`` per
    request, or what arrived within ``max_wait_ms``; with ``consumer_in_loop`` the consumer
    runs on the worker's event loop instead of a thread of its own."""

    class FetchTunedConsumerThread(faust_kafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # Faust passes no way to set these; aiokafka reads them when the consumer starts.
            consumer._fetch_min_bytes = min_bytes
            consumer._fetch_max_wait_ms = max_wait_ms
            return consumer

    class InLoopConsumerThread(FetchTunedConsumerThread):
        """The consumer as a plain service of the worker's loop.

        Faust runs aiokafka's consumer on a second event loop in a thread of its own and
        reaches it through a method queue: every fetch and commit crosses between the two
        loops twice, and the two threads hand the GIL back and forth. aiokafka is asyncio
        code, so the same calls can simply be awaited on the worker's loop.
        """

        wait_for_shutdown = False  # set by the thread's exit, and there is no thread

        def __init__(self, consumer: Any, *, loop: Any, **kwargs: Any) -> None:
            super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)

        async def start(self) -> None:
            await Service.start(self)

        async def maybe_start(self) -> bool:
            return await Service.maybe_start(self)

        async def stop(self) -> None:
            await Service.stop(self)

        async def on_stop(self) -> None:
            await self.on_thread_stop()  # stops aiokafka's consumer

        async def _stop_children(self) -> None:
            await self._default_stop_children()

        async def _stop_futures(self) -> None:
            await self._default_stop_futures()

        async def _stop_exit_stacks(self) -> None:
            await self._default_stop_exit_stacks()

        async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return await maybe_async(fun(*args, **kwargs))  # Faust passes sync ones too

    consumer_thread = InLoopConsumerThread if consumer_in_loop else FetchTunedConsumerThread

    class FetchTunedConsumer(faust_kafka.Consumer):
        def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
            return consumer_thread(self, loop=self.loop, beacon=self.beacon)

    class FetchTunedTransport(faust_kafka.Transport):
        Consumer = FetchTunedConsumer
        Producer = IdempotentProducer

    return FetchTunedTransport


class IdempotentProducer(faust_kafka.Producer):
    """Faust's producer with ``enable_idempotence`` (needs acks=all, which the app sets)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "enable_idempotence": True}


def aiokafka_producer(faust_producer: Any) -> aiokafka.AIOKafkaProducer:
    """The aiokafka producer inside Faust's (its batch API is what the validate stage needs)."""
    producer: aiokafka.AIOKafkaProducer = faust_producer._ensure_producer()
    return producer


def configure_web_handler(web: Any, **options: Any) -> None:
    """Options for aiohttp's RequestHandler: Faust builds the AppRunner and has no setting for
    them; the runner passes its keyword arguments on to each connection's handler."""
    runner = getattr(web, "_runner", None)
    if runner is None or not isinstance(getattr(runner, "_kwargs", None), dict):
        raise RuntimeError("cannot configure the aiohttp runner: unexpected Faust web driver")
    runner._kwargs.update(options)


def explain_listen_errors(web: Any, bind: str, port: int) -> None:
    """A web port the worker cannot listen on fails its start with the settings to change named
    in the error, instead of the event loop's bare bind error."""
    start_server = web.start_server

    async def start_server_or_explain() -> None:
        try:
            await start_server()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(
                exc.errno,
                f"TrackFlow cannot listen on {bind}:{port}: {reason}; stop what holds it or set "
                "another TRACKFLOW_WEB_PORT (or TRACKFLOW_WEB_BIND)",
            ) from exc

    web.start_server = start_server_or_explain
