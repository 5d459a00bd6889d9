"""Faust's aiokafka transport, with the fetch size and wait of the worker's consumer set here,
and an idempotent producer.

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

from collections.abc import Mapping
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_kafka


def fetch_tuned_transport(min_bytes: int, max_wait_ms: int) -> type[faust_kafka.Transport]:
    """Faust's Kafka transport whose worker consumer fetches at least ``min_bytes`` per
    request, or what arrived within ``max_wait_ms``."""

    class FetchTunedConsumerThread(faust_kafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # Faust passes no way to set these; aiokafka reads them when the consumer starts.
            consumer._fetch_min_bytes = min_bytes
            consumer._fetch_max_wait_ms = max_wait_ms
            return consumer

    class FetchTunedConsumer(faust_kafka.Consumer):
        def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
            return FetchTunedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class FetchTunedTransport(faust_kafka.Transport):
        Consumer = FetchTunedConsumer
        Producer = IdempotentProducer

    return FetchTunedTransport


class IdempotentProducer(faust_kafka.Producer):
    """Faust's producer with ``enable_idempotence`` (needs acks=all, which the app sets)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "enable_idempotence": True}
