"""Memory of one validate round, whole or bounded by bytes, on the benchmark's events.

    .venv/bin/python -m bench.validate_round_memory [--records 200] [--posts-per-record 20]

Builds the raw records the edge writes under overload (its group commit packs many POSTs into
one record, each a raw batch of the load generator's), then runs what the validate stage does
with one round of them — decode and validate every record (``process_raw_record``), then
encode and group what it publishes (``records_by_partition``) — once over the whole round
and once per part of ``rounds_by_bytes``, measuring the peak of Python's allocations
(tracemalloc) of each. Prints both peaks and the round's bytes as JSON. No Kafka, no Faust.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Sequence

import orjson

from agents.fanout import records_by_partition
from agents.validate import ValidationPolicy, process_raw_record, rounds_by_bytes
from bench.workload import raw_batches, tenant_keys


def group_records(records: int, posts_per_record: int) -> list[bytes]:
    tenants = tenant_keys(40)
    now = int(time.time() * 1000)
    batches = list(raw_batches(tenants, records * posts_per_record * 10, now))
    need = records * posts_per_record
    batches = (batches * (need // max(len(batches), 1) + 1))[:need]
    return [
        orjson.dumps(batches[i : i + posts_per_record]) for i in range(0, need, posts_per_record)
    ]


def peak_of_round(values: Sequence[bytes], parts: list[range], policy: ValidationPolicy) -> int:
    gc.collect()
    tracemalloc.start()
    for part in parts:
        outcomes = [process_raw_record(values[i], policy) for i in part]
        grouped = records_by_partition(outcomes, "processed", "dead", lambda _t, k: hash(k) % 4)
        del outcomes, grouped
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.validate_round_memory")
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--posts-per-record", type=int, default=20)
    parser.add_argument("--max-bytes", type=int, default=1_048_576)
    args = parser.parse_args()
    values = group_records(args.records, args.posts_per_record)
    policy = ValidationPolicy(tenant_keys=frozenset(tenant_keys(40)))
    sizes = [len(value) for value in values]
    bounded = rounds_by_bytes(sizes, args.max_bytes)
    whole = [range(len(values))]
    # Alternating, twice each: the figures are peaks of the same work, so they repeat closely.
    peaks: dict[str, list[int]] = {"whole": [], "bounded": []}
    for _ in range(2):
        peaks["whole"].append(peak_of_round(values, whole, policy))
        peaks["bounded"].append(peak_of_round(values, bounded, policy))
    print(
        orjson.dumps(
            {
                "records": len(values),
                "round_mb": round(sum(sizes) / 2**20, 1),
                "bounded_parts": len(bounded),
                "peak_mb_whole": [round(p / 2**20, 1) for p in peaks["whole"]],
                "peak_mb_bounded": [round(p / 2**20, 1) for p in peaks["bounded"]],
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
