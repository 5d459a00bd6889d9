"""Kafka bytes per event on the benchmark's events: what sizes the brokers' disks.

    .venv/bin/python -m bench.topic_bytes [--events 50000]

Encodes the load generator's batches as the edge writes them to the raw topic (one record per
request) and the validate stage's output as it writes it to the processed topic (one record per
event, keyed by session), and prints the bytes per event of each: record keys and values, before
Kafka's own per-record and per-batch overhead. The workers send them uncompressed; the gzip
figure (of runs of 50 raw or 500 processed records) is what producer compression could save.
"""

from __future__ import annotations

import argparse
import gzip
import time

import orjson

from agents.validate import ValidationPolicy, process_batch
from bench.workload import raw_batches, tenant_keys


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.topic_bytes")
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    tenants = tenant_keys(40)
    policy = ValidationPolicy(tenant_keys=frozenset(tenants))
    raw: list[bytes] = []
    processed: list[bytes] = []
    events = 0
    for batch in raw_batches(tenants, args.events, int(time.time() * 1000)):
        raw.append(orjson.dumps(batch))
        events += len(batch["events"])
        for event in process_batch(batch, policy, None).processed:
            processed.append(event["session_id"].encode() + orjson.dumps(event))
    raw_bytes = sum(map(len, raw))
    processed_bytes = sum(map(len, processed))
    raw_gzip = sum(len(gzip.compress(b"".join(raw[i : i + 50]))) for i in range(0, len(raw), 50))
    processed_gzip = sum(
        len(gzip.compress(b"".join(processed[i : i + 500]))) for i in range(0, len(processed), 500)
    )
    print(f"events {events}, raw records {len(raw)}, processed records {len(processed)}")
    print(f"raw topic       {raw_bytes / events:6.0f} bytes/event (gzip {raw_gzip / events:.0f})")
    print(
        f"processed topic {processed_bytes / len(processed):6.0f} bytes/event"
        f" (gzip {processed_gzip / len(processed):.0f})"
    )


if __name__ == "__main__":
    main()
