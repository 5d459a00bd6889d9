"""Create TrackFlow's topics with explicit partition counts (idempotent)."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from trackflow_app.settings import Settings

log = logging.getLogger(__name__)


class BrokerUnreachable(RuntimeError):
    """No broker of TRACKFLOW_BROKER_URL answered when the worker started."""


def broker_unreachable_message(bootstrap: str, reason: str) -> str:
    return (
        f"TrackFlow cannot reach Kafka at {bootstrap} ({reason}): start the broker (make run "
        "starts a local one) or set TRACKFLOW_BROKER_URL to one that runs"
    )


def topic_specs(settings: Settings) -> list[NewTopic]:
    rf = settings.replication_factor
    config = {
        # A raw record holds a whole (decompressed) request; brokers default to 1 MB messages.
        "max.message.bytes": str(settings.max_decompressed_bytes + 1024 * 1024),
        # With acks=all a write is acknowledged once this many replicas hold it (the leader
        # included); with fewer in sync, Kafka refuses writes rather than keep one copy.
        "min.insync.replicas": str(settings.min_isr),
    }
    return [
        NewTopic(settings.raw_topic, settings.raw_partitions, rf, topic_configs=config),
        NewTopic(settings.processed_topic, settings.processed_partitions, rf, topic_configs=config),
        NewTopic(
            settings.dead_letter_topic, settings.dead_letter_partitions, rf, topic_configs=config
        ),
    ]


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        await admin.close()
        raise BrokerUnreachable(
            broker_unreachable_message(settings.kafka_bootstrap, str(exc))
        ) from exc
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(missing)
            log.info("topics created names=%s", ",".join(t.name for t in missing))
    finally:
        await admin.close()
