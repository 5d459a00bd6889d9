"""trackflow_app.kafka and the app's producer: the worker's fetch and linger settings reach
aiokafka."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from faust.types import TransportT

from tests.support.env import clear_trackflow_env
from trackflow_app.kafka import fetch_tuned_transport
from trackflow_app.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What these tests build (apps, consumers, producers) sees no TRACKFLOW_* variable of the
    shell running them. The worker's app itself is built when trackflow_app is first imported,
    so its checks compare with its own settings, not with the defaults."""
    clear_trackflow_env(monkeypatch)


class FetchTunedApp(faust.App):
    def _new_transport(self) -> TransportT:
        return fetch_tuned_transport(4096, 7)(self.conf.broker_consumer, self)


async def test_the_worker_consumer_is_built_with_the_fetch_settings() -> None:
    app = FetchTunedApp("fetch-tuned", broker="kafka://127.0.0.1:9", autodiscover=False)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(app.transport)
    try:
        # aiokafka hands these to its fetcher when the consumer starts.
        assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (4096, 7)
        # Faust's own settings are kept.
        assert consumer._enable_auto_commit is False
        assert consumer._group_id == "fetch-tuned"
    finally:
        await consumer.stop()


def test_the_worker_app_uses_the_tuned_transport() -> None:
    from trackflow_app.app import app

    consumer: Any = app.consumer
    assert type(app.transport).__name__ == "FetchTunedTransport"
    assert type(consumer._thread).__name__ == "FetchTunedConsumerThread"
    assert Settings.model_fields["raw_fetch_min_bytes"].default == 32_768


def test_the_producer_lingers_as_configured() -> None:
    from trackflow_app.app import app, settings

    producer: Any = app.producer
    assert Settings.model_fields["producer_linger_ms"].default == 5
    # Faust hands this to aiokafka's producer as its linger_ms.
    assert producer.linger_ms == settings.producer_linger_ms


async def test_the_worker_producer_is_idempotent_with_acks_all() -> None:
    from trackflow_app.app import app

    producer: Any = app.producer
    kafka = producer._new_producer()
    try:
        # aiokafka keeps a producer id and sequence numbers (its transaction manager) only for
        # an idempotent producer.
        assert kafka._txn_manager is not None
        assert kafka._sender._acks == -1
    finally:
        await kafka.stop()


async def test_the_internals_trackflow_relies_on_are_there() -> None:
    """trackflow_app.kafka reaches into Faust, aiokafka and aiohttp; a version that moves one
    of these must fail here, not in production."""
    import inspect

    import aiokafka
    from aiohttp.web_protocol import RequestHandler
    from faust.transport.drivers import aiokafka as faust_kafka

    from trackflow_app.app import app
    from trackflow_app.kafka import configure_web_handler

    assert callable(faust_kafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert callable(faust_kafka.Consumer._new_consumer_thread)
    assert callable(faust_kafka.Producer._settings_extra)
    assert callable(faust_kafka.Producer._ensure_producer)
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    assert isinstance(consumer._fetch_min_bytes, int)
    assert isinstance(consumer._fetch_max_wait_ms, int)
    handler_options = inspect.signature(RequestHandler.__init__).parameters
    assert {"auto_decompress", "keepalive_timeout"} <= set(handler_options)
    runner: Any = app.web._runner  # type: ignore[attr-defined]
    assert isinstance(runner._kwargs, dict)
    configure_web_handler(app.web, keepalive_timeout=12.5)
    assert runner._kwargs["keepalive_timeout"] == 12.5
    await consumer.stop()
