"""CPU cost of the validate stage's pure core, per event, on the benchmark's events.

    .venv/bin/python -m bench.validate_cost [--events 100000]

Runs ``agents.validate.process_batch`` (pydantic models, sanitizing, skew correction) over the
load generator's batches in this process, with no Kafka, Faust or HTTP around it, and prints
the CPU microseconds per event. Not a test: a figure to set against the worker's CPU-s per
million events in bench/results.md.
"""

from __future__ import annotations

import argparse
import time

import orjson

from agents.validate import ValidationPolicy, process_batch
from bench.workload import raw_batches, tenant_keys


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.validate_cost")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    tenants = tenant_keys(40)
    batches = list(raw_batches(tenants, args.events, int(time.time() * 1000)))
    policy = ValidationPolicy(tenant_keys=frozenset(tenants))
    events = sum(len(batch["events"]) for batch in batches)
    started = time.process_time()
    processed = sum(len(process_batch(batch, policy).processed) for batch in batches)
    cpu_s = time.process_time() - started
    print(
        orjson.dumps(
            {"events": events, "processed": processed, "cpu_us_per_event": cpu_s / events * 1e6}
        ).decode()
    )


if __name__ == "__main__":
    main()
