"""The Faust application: settings, topics and the shared clients every stage uses."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import faust
import mode.loop
from faust.types import TransportT
from faust.worker import Worker

from trackflow_app.fault_switch import FaultSwitchedStore
from trackflow_app.gc_tuning import settle_after_start
from trackflow_app.kafka import fetch_tuned_transport
from trackflow_app.logs import logging_config
from trackflow_app.loop_watch import LoopWatch, time_gc_pauses
from trackflow_app.settings import ENV_PREFIX, Settings, faust_overrides, load_settings
from trackflow_app.shutdown import StopWatchdog, stop_limit_s
from trackflow_app.store import EventStore, embedded_store_folder
from trackflow_app.topics import ensure_topics

settings: Settings = load_settings()
log = logging.getLogger(__name__)


def prepare_folders(folders: dict[str, Path]) -> None:
    """Create each folder the worker writes to, with its parents; a folder that cannot be made
    ends the process with one line naming its setting (not a traceback from deep in Faust)."""
    for setting, folder in folders.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            sys.exit(f"TrackFlow: cannot create the folder of {setting}={folder}: {exc.strerror}")


def worker_folders(current: Settings) -> dict[str, Path]:
    """Setting name -> folder the worker needs (Faust's data folder; an embedded store's)."""
    folders = {"TRACKFLOW_DATADIR": Path(current.datadir).resolve()}
    store = embedded_store_folder(current.clickhouse_url)  # absolute: the settings check it
    if current.store_on_this_worker and store is not None:
        folders["TRACKFLOW_CLICKHOUSE_URL"] = Path(store)
    return folders


prepare_folders(worker_folders(settings))

# uvloop unless FAUST_LOOP / `faust -L` chose a loop: set before the worker creates its loop.
if settings.event_loop != "aio":
    mode.loop.use(settings.event_loop)


class NoIngestKeys(RuntimeError):
    """A worker without TRACKFLOW_API_KEYS refuses every POST, and its validate stage, in the
    group with every other worker, would dead-letter their events as unknown_tenant."""

    def __init__(self) -> None:
        super().__init__(
            "TrackFlow has no ingest keys: set TRACKFLOW_API_KEYS to the keys sites send, the same "
            "on every worker of the group (comma-separated; make run sets dev-key). Without them "
            "this worker would refuse every POST and dead-letter the group's events as "
            "unknown_tenant"
        )


class TrackFlowApp(faust.App):
    loop_watch: LoopWatch | None = None

    def _new_transport(self) -> TransportT:
        transport = fetch_tuned_transport(
            settings.raw_fetch_min_bytes,
            settings.raw_fetch_max_wait_ms,
            consumer_in_loop=settings.kafka_consumer_in_loop,
        )
        return transport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        if not settings.tenant_keys:
            raise NoIngestKeys()
        # Topics must exist with their partition counts before Faust's consumer subscribes;
        # the broker does not auto-create them.
        await ensure_topics(settings)
        log.info(
            "event loop %s; kafka consumer on %s",
            type(asyncio.get_running_loop()).__module__,
            "the event loop" if settings.kafka_consumer_in_loop else "a thread of its own",
        )
        await super().on_first_start()

    async def on_started(self) -> None:
        await super().on_started()
        state = settle_after_start(settings.gc_gen0_threshold)
        log.info(
            "garbage collector thresholds=%s frozen_objects=%d",
            state.thresholds,
            state.frozen_objects,
        )
        if settings.loop_stall_ms and self.loop_watch is None:
            self.loop_watch = LoopWatch(settings.loop_stall_ms / 1000)
            self.loop_watch.start()
            time_gc_pauses(settings.loop_stall_ms / 1000)

    async def on_stop(self) -> None:
        # The stop's own waits are bounded by the stop watchdog; the stall watch would report
        # the loop as stuck once its heartbeat task is cancelled.
        if self.loop_watch is not None:
            self.loop_watch.stop()
        await super().on_stop()


class TrackFlowWorker(Worker):
    """Faust's worker, with a bounded stop: the first INT/TERM/HUP arms the stop watchdog."""

    def _repr_name(self) -> str:
        return "Worker"  # log lines keep Faust's "[^Worker]" prefix

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        # A closed terminal or a supervisor's HUP stops the worker like TERM (flush, then exit).
        self.loop.add_signal_handler(signal.SIGHUP, self._schedule_shutdown, signal.SIGHUP)

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        stop_watchdog.arm()
        super()._schedule_shutdown(signal)

    def stop_and_shutdown(self) -> None:
        # Also reached without a signal (start-up failed, a service crashed).
        stop_watchdog.arm()
        super().stop_and_shutdown()


# What TrackFlow sets in Faust. Faust also reads TRACKFLOW_<SETTING> variables (env_prefix, for
# its settings TrackFlow leaves alone), and such a variable would win over these values:
# TRACKFLOW_PRODUCER_ACKS=1 would answer 202 before every in-sync replica holds a batch.
faust_settings: dict[str, Any] = dict(
    broker=settings.broker_url,
    autodiscover=False,
    datadir=str(worker_folders(settings)["TRACKFLOW_DATADIR"]),
    store="memory://",
    web_bind=settings.web_bind,
    web_port=settings.web_port,
    # acks=all: a 202 is only answered once every in-sync replica holds the batch.
    producer_acks=-1,
    # Fewer, larger produce requests; a few ms on a POST is cheap next to many tiny requests.
    producer_linger=settings.producer_linger_ms / 1000,
    producer_max_batch_size=256 * 1024,
    producer_compression_type=None
    if settings.producer_compression == "none"
    else settings.producer_compression,
    producer_max_request_size=settings.max_decompressed_bytes + 1024 * 1024,
    consumer_auto_offset_reset="earliest",
    topic_replication_factor=settings.replication_factor,
    topic_allow_declare=True,
    topic_disable_leader=True,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=settings.raw_buffer_records,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.session_timeout_s / 5,
    web_in_thread=False,
    Worker=TrackFlowWorker,
    logging_config=logging_config(settings.log_format, settings.log_level),
)
if overrides := faust_overrides(faust_settings, os.environ):
    sys.exit("\n".join(overrides))
app = TrackFlowApp(settings.app_id, env_prefix=ENV_PREFIX, **faust_settings)

raw_topic = app.topic(
    settings.raw_topic,
    partitions=settings.raw_partitions,
    key_serializer="raw",
    value_serializer="raw",
)
processed_topic = app.topic(
    settings.processed_topic,
    partitions=settings.processed_partitions,
    key_serializer="raw",
    value_serializer="raw",
)
dead_letter_topic = app.topic(
    settings.dead_letter_topic,
    partitions=settings.dead_letter_partitions,
    key_serializer="raw",
    value_serializer="raw",
)


def open_event_store(settings: Settings) -> EventStore:
    """The store the settings name; one that refuses inserts on cue only when the test-only
    TRACKFLOW_SINK_FAIL_FLAG is set (the default store's inserts check no file)."""
    make: Callable[..., EventStore] = EventStore
    if settings.sink_fail_flag:
        make = partial(FaultSwitchedStore, Path(settings.sink_fail_flag))
    return make(
        settings.clickhouse_url,
        settings.clickhouse_table,
        merge_nice=settings.chdb_merge_nice,
        dirty_decay_ms=settings.chdb_dirty_decay_ms,
        merges_at_once=settings.chdb_merges_at_once,
        cluster=settings.clickhouse_cluster,
        retention_days=settings.retention_days,
    )


event_store = open_event_store(settings)


def _release_store() -> None:
    if not event_store.close_within(2.0):
        log.error("store busy at exit: not closed (chDB recovers its parts on the next open)")


stop_watchdog = StopWatchdog(stop_limit_s(settings.sink_shutdown_flush_s), _release_store)
