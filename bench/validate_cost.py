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
from typing import Any

import orjson

from agents.validate import ValidationPolicy, process_batch
from bench.workload import Workload, stamp, tenant_keys


def raw_batches(count: int) -> list[Any]:
    tenants = tenant_keys(40)
    now = int(time.time() * 1000)
    batches = []
    for batch in Workload(tenants, 5000, seed=11).batches(count):
        envelope = orjson.loads(stamp(batch.body, now))
        batches.append(
            {
                "v": 1,
                "api_key": envelope["events"][0]["tenantId"],
                "received_at": now,
                "ip": "127.0.0.1",
                "user_agent": batch.user_agent,
                "sent_at": envelope["sentAt"],
                "dropped": None,
                "events": envelope["events"],
            }
        )
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.validate_cost")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    batches = raw_batches(args.events)
    policy = ValidationPolicy(tenant_keys=frozenset(tenant_keys(40)))
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
