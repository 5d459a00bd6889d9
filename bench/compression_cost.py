"""CPU and bytes per event of each Kafka compression codec, on the records the worker writes.

    .venv/bin/python -m bench.compression_cost [--events 20000] [--per-batch 5 --per-batch 20]

Makes the benchmark's batches into what the worker produces: raw records (three POSTs' batches
each, as the edge's group commit packs them at 3,600 ev/s) and processed records (one per event,
keyed by session, from the validate core and the fan-out's encoder). Then builds Kafka record
batches of them with aiokafka's record builder (the producer's own code) for every codec, and
prints the batch bytes and the producer's CPU-µs per event, for raw records one per batch and
for processed records ``--per-batch`` to a batch (the validate stage writes each round's
records for one partition as a batch, so a batch holds more of them as the rate rises).
Reading the batches back is timed too: what the validate stage and the sink pay. Each codec
builds and reads ``--repeat`` times in turn, in one process. Not a test: a figure for
bench/tuning.md and the README's sizing table (bytes per event on the brokers' disks).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import orjson
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from agents.fanout import encode_event
from agents.validate import ValidationPolicy, process_batch
from bench.workload import raw_batches, tenant_keys

CODECS = {
    "none": DefaultRecordBatch.CODEC_NONE,
    "lz4": DefaultRecordBatch.CODEC_LZ4,
    "zstd": DefaultRecordBatch.CODEC_ZSTD,
    "snappy": DefaultRecordBatch.CODEC_SNAPPY,
    "gzip": DefaultRecordBatch.CODEC_GZIP,
}
POSTS_PER_RAW_RECORD = 3  # the edge's group commit at 3,600 ev/s (bench.thread_cpu)


Record = tuple[bytes | None, bytes]


def worker_records(events: int) -> tuple[list[Record], list[Record]]:
    """The raw records and the processed records the worker writes for ``events`` events."""
    tenants = tenant_keys(40)
    batches = list(raw_batches(tenants, events, int(time.time() * 1000)))
    raw: list[Record] = [
        (None, b"[" + b",".join(map(orjson.dumps, batches[i : i + POSTS_PER_RAW_RECORD])) + b"]")
        for i in range(0, len(batches), POSTS_PER_RAW_RECORD)
    ]
    policy = ValidationPolicy(tenant_keys=frozenset(tenants))
    processed: list[Record] = []
    for batch in batches:
        for event in process_batch(batch, policy).processed:
            value, _ = encode_event(event)
            if value is not None:
                processed.append((event["session_id"].encode(), value))
    return raw, processed


def build_batches(records: Sequence[Record], per_batch: int, codec: int) -> list[bytes]:
    built = []
    for start in range(0, len(records), per_batch):
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=codec,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=16 * 1024 * 1024,
        )
        for offset, (key, value) in enumerate(records[start : start + per_batch]):
            builder.append(offset, timestamp=None, key=key, value=value, headers=[])
        built.append(bytes(builder.build()))
    return built


def read_batches(built: Sequence[bytes]) -> int:
    return sum(len(record.value or b"") for data in built for record in DefaultRecordBatch(data))


def cpu_us(work: Callable[[], object], repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        work()
    return (time.process_time() - started) / repeat * 1e6


def measure(
    records: list[Record], per_batch: int, events: int, repeat: int
) -> dict[str, dict[str, float]]:
    figures = {}
    for name, codec in CODECS.items():
        built = build_batches(records, per_batch, codec)
        figures[name] = {
            "bytes_per_event": round(sum(map(len, built)) / events, 1),
            "build_us_per_event": round(
                cpu_us(lambda c=codec: build_batches(records, per_batch, c), repeat) / events, 2
            ),
            "read_us_per_event": round(cpu_us(lambda b=built: read_batches(b), repeat) / events, 2),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compression_cost")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-batch", type=int, action="append", default=[], metavar="N")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw, processed = worker_records(args.events)
    events = len(processed)
    report: dict[str, object] = {
        "events": events,
        "raw_records": len(raw),
        "raw, one record per batch": measure(raw, 1, events, args.repeat),
    }
    for per_batch in args.per_batch or [5, 20]:
        report[f"processed, {per_batch} per batch"] = measure(
            processed, per_batch, events, args.repeat
        )
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
