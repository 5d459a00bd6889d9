"""CPU cost of placing the validate stage's processed records on partitions: aiokafka's default
partitioner against ``trackflow_app.kafka.KeyHashPartitioner``, through the producer's own
``_partition`` (what Faust's ``key_partition`` calls), in the same process, alternating.

The keys are the benchmark workload's sessions in the order its batches send them (one session
per batch, as the tracker sends them); the validate stage looks a key up once per batch.

    .venv/bin/python -m bench.partition_cost --batches 200000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from aiokafka.cluster import ClusterMetadata
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.metadata import MetadataResponse_v0

from bench.workload import Workload, tenant_keys
from trackflow_app.kafka import KeyHashPartitioner
from trackflow_app.settings import Settings

TOPIC = "processed"
Partitioner = Callable[[bytes | None, list[int], list[int]], int]


def metadata(partitions: int) -> ClusterMetadata:
    cluster = ClusterMetadata()
    rows = [(0, p, 0, [0], [0]) for p in range(partitions)]
    cluster.update_metadata(MetadataResponse_v0([(0, "127.0.0.1", 9092)], [(0, TOPIC, rows)]))
    return cluster


def place(cluster: ClusterMetadata, partitioner: Partitioner, key: bytes) -> int:
    """What ``AIOKafkaProducer._partition`` does for a keyed record."""
    all_partitions = list(cluster.partitions_for_topic(TOPIC) or ())
    available = list(cluster.available_partitions_for_topic(TOPIC) or ())
    return partitioner(key, all_partitions, available)


def us_per_key(cluster: ClusterMetadata, partitioner: Partitioner, keys: list[bytes]) -> float:
    started = time.process_time()
    for key in keys:
        place(cluster, partitioner, key)
    return (time.process_time() - started) / len(keys) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=Settings().processed_partitions)
    args = parser.parse_args()
    workload = Workload(tenant_keys(20))
    keys, events = [], 0
    for _ in range(args.batches):
        session, batch = workload.batch_events()
        keys.append(session.session_id.encode())
        events += len(batch)
    cluster = metadata(args.partitions)
    per_batch = events / len(keys)
    print(
        f"{len(keys):,} batches, {events:,} events ({per_batch:.1f} per batch), "
        f"{len(set(keys)):,} sessions, {args.partitions} partitions"
    )
    for _ in range(3):
        # A fresh partitioner each round: its memory starts empty, as after a worker's start.
        for name, partitioner in (
            ("aiokafka default", DefaultPartitioner()),
            ("key hash remembered", KeyHashPartitioner()),
        ):
            us = us_per_key(cluster, partitioner, keys)
            print(f"{name}: {us:.2f} CPU-µs per batch, {us / per_batch:.3f} per event")


if __name__ == "__main__":
    main()
