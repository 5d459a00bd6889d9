"""trackflow_app.kafka and the app's producer: the worker's fetch, linger and compression
settings reach aiokafka."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, get_args

import aiokafka.codec
import faust
import pytest
from aiokafka import AIOKafkaProducer
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


class InLoopApp(faust.App):
    def _new_transport(self) -> TransportT:
        transport = fetch_tuned_transport(4096, 7, consumer_in_loop=True)
        return transport(self.conf.broker_consumer, self)


async def test_the_in_loop_consumer_runs_its_calls_on_the_callers_loop_and_thread() -> None:
    app = InLoopApp("in-loop", broker="kafka://127.0.0.1:9", autodiscover=False)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    assert thread.thread_loop is thread.parent_loop is loop
    # Its aiokafka consumer is built for that loop, with the fetch settings.
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (4096, 7)
    finally:
        await consumer.stop()

    seen: list[tuple[object, object]] = []

    def sync_call(value: int) -> int:
        seen.append((threading.current_thread(), None))
        return value + 1

    async def async_call(value: int) -> int:
        seen.append((threading.current_thread(), asyncio.get_running_loop()))
        return value * 2

    assert await thread.call_thread(sync_call, 1) == 2
    assert await thread.call_thread(async_call, 5) == 10
    assert seen == [(threading.current_thread(), None), (threading.current_thread(), loop)]


async def test_the_threaded_consumer_keeps_a_loop_of_its_own() -> None:
    app = FetchTunedApp("threaded", broker="kafka://127.0.0.1:9", autodiscover=False)
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    assert thread.thread_loop is not asyncio.get_running_loop()
    assert type(thread).__name__ == "FetchTunedConsumerThread"


def test_the_worker_app_uses_the_tuned_transport() -> None:
    from trackflow_app.app import app

    consumer: Any = app.consumer
    assert type(app.transport).__name__ == "FetchTunedTransport"
    assert type(consumer._thread).__name__ == "InLoopConsumerThread"
    assert Settings.model_fields["kafka_consumer_in_loop"].default is True
    assert Settings.model_fields["raw_fetch_min_bytes"].default == 32_768


def test_the_producer_lingers_as_configured() -> None:
    from trackflow_app.app import app, settings

    producer: Any = app.producer
    assert Settings.model_fields["producer_linger_ms"].default == 5
    # Faust hands this to aiokafka's producer as its linger_ms.
    assert producer.linger_ms == settings.producer_linger_ms


def test_the_producer_compresses_as_configured() -> None:
    from trackflow_app.app import app, settings

    producer: Any = app.producer
    assert Settings.model_fields["producer_compression"].default == "none"
    expected = None if settings.producer_compression == "none" else settings.producer_compression
    assert producer.compression_type == expected


def test_the_compressions_offered_are_those_aiokafka_writes() -> None:
    offered = set(get_args(Settings.model_fields["producer_compression"].annotation))
    assert offered - {"none"} == set(AIOKafkaProducer._COMPRESSORS)


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd", "snappy"])
def test_every_compression_offered_is_installed(codec: str) -> None:
    # aiokafka finds lz4, zstd and snappy in cramjam, a dependency: without it a worker set to
    # one of them would fail to start, and a consumer could not read such batches.
    payload = b'{"type":"pageview","url":"https://example.com/"}' * 200
    compressed = getattr(aiokafka.codec, f"{codec}_encode")(payload)
    assert len(compressed) < len(payload) // 10
    assert getattr(aiokafka.codec, f"{codec}_decode")(compressed) == payload


async def test_the_raw_stream_buffers_hold_the_configured_records() -> None:
    from trackflow_app.app import app, raw_topic, settings

    assert Settings.model_fields["raw_buffer_records"].default == 256
    assert app.conf.stream_buffer_maxsize == settings.raw_buffer_records
    # What the validate agent iterates: a clone of the raw topic and a stream over it, each
    # with a buffer of that many records (Faust pauses fetching a partition when it fills).
    channel = raw_topic.clone(is_iterator=True)
    assert channel.queue.maxsize == settings.raw_buffer_records
    assert channel.stream().outbox.maxsize == settings.raw_buffer_records


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
    from mode.threads import QueueServiceThread, ServiceThread

    from trackflow_app.app import app
    from trackflow_app.kafka import configure_web_handler

    assert callable(faust_kafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert callable(faust_kafka.Consumer._new_consumer_thread)
    assert callable(faust_kafka.Producer._settings_extra)
    assert callable(faust_kafka.Producer._ensure_producer)
    # The in-loop consumer: a ServiceThread started and stopped as a plain Service.
    assert "thread_loop" in inspect.signature(ServiceThread.__init__).parameters
    for name in ("_default_stop_children", "_default_stop_futures", "_default_stop_exit_stacks"):
        assert callable(getattr(ServiceThread, name))
    assert callable(faust_kafka.AIOKafkaConsumerThread.on_thread_stop)
    assert "call_thread" in vars(QueueServiceThread)
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


class _Web:
    def __init__(self, error: OSError | None) -> None:
        self.error = error
        self.started = False

    async def start_server(self) -> None:
        if self.error is not None:
            raise self.error
        self.started = True


async def test_a_port_that_cannot_be_bound_is_explained_with_its_settings() -> None:
    from trackflow_app.kafka import explain_listen_errors

    web = _Web(OSError(98, "error while attempting to bind on address ('0.0.0.0', 6066)"))
    explain_listen_errors(web, "0.0.0.0", 6066)
    with pytest.raises(OSError) as failed:
        await web.start_server()
    assert failed.value.errno == 98
    assert failed.value.strerror == (
        "TrackFlow cannot listen on 0.0.0.0:6066: Address already in use; stop what holds it or "
        "set another TRACKFLOW_WEB_PORT (or TRACKFLOW_WEB_BIND)"
    )

    ok = _Web(None)
    explain_listen_errors(ok, "127.0.0.1", 6066)
    await ok.start_server()
    assert ok.started


def test_the_worker_app_explains_listen_errors() -> None:
    from trackflow_app.app import app

    assert app.web.start_server.__name__ == "start_server_or_explain"  # type: ignore[attr-defined]
