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

    def __init__(self, bootstrap: str, reason: str) -> None:
        super().__init__(
            f"TrackFlow cannot reach Kafka at {bootstrap} ({reason}): start the broker (make "
            "run starts a local one) or set TRACKFLOW_BROKER_URL to one that runs"
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


PARTITION_SETTINGS = {
    "raw_topic": "TRACKFLOW_RAW_PARTITIONS",
    "processed_topic": "TRACKFLOW_PROCESSED_PARTITIONS",
    "dead_letter_topic": "TRACKFLOW_DEAD_LETTER_PARTITIONS",
}


def partition_mismatches(settings: Settings, existing: dict[str, int]) -> list[str]:
    """A warning for each existing topic whose partition count is not the configured one: the
    worker never changes a topic it did not create, and partitions bound how many workers share
    a stage."""
    warnings = []
    for topic_setting, variable in PARTITION_SETTINGS.items():
        topic = getattr(settings, topic_setting)
        wanted = getattr(settings, variable.removeprefix("TRACKFLOW_").lower())
        found = existing.get(topic)
        if found is None or found == wanted:
            continue
        fix = (
            f"raise it with kafka-topics.sh --alter --topic {topic} --partitions {wanted}"
            if found < wanted
            else f"Kafka cannot remove partitions, so set {variable}={found}"
        )
        warnings.append(
            f"topic {topic} has {found} partitions, {variable}={wanted}: it keeps {found} "
            f"(at most {found} workers share its stage); {fix}"
        )
    return warnings


async def partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    if not topics:
        return {}
    described = await admin.describe_topics(topics)
    return {str(t["topic"]): len(t["partitions"]) for t in described if not t["error_code"]}


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        await admin.close()
        raise BrokerUnreachable(settings.kafka_bootstrap, str(exc)) from exc
    try:
        existing = set(await admin.list_topics())
        specs = topic_specs(settings)
        missing = [spec for spec in specs if spec.name not in existing]
        present = [spec.name for spec in specs if spec.name in existing]
        for warning in partition_mismatches(settings, await partition_counts(admin, present)):
            log.warning(warning)
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(missing)
            log.info("topics created names=%s", ",".join(t.name for t in missing))
    finally:
        await admin.close()
