"""An ingest-only worker's memory while it catches up on a backlog of raw records.

A worker that restarts after an outage, or that fell behind, finds the raw topic full of records
that the edge packed under load (many POSTs each). It fetches ahead of its validate stage until
its stream buffers (``TRACKFLOW_RAW_BUFFER_RECORDS``) are full. This writes such a backlog
into the raw topic of a stopped worker, starts it without the sink, and reports how long it took
to validate every event and the most memory it held meanwhile; each variant (worker
environment) in turn, on one broker.

    .venv/bin/python -m bench.backlog_memory --records 6000 --posts-per-record 20 \\
        --variant TRACKFLOW_RAW_BUFFER_RECORDS=4096 --variant TRACKFLOW_RAW_BUFFER_RECORDS=256
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from bench.procfs import status_mb
from bench.rig import parse_metrics, worker_overrides
from bench.workload import raw_batches, tenant_keys
from harness.stack import Broker, Worker, start_broker


def packed_records(records: int, posts_per_record: int) -> tuple[list[bytes], int]:
    """Raw records as the edge writes them under load: JSON arrays of raw batches."""
    tenants = tenant_keys(40)
    wanted = records * posts_per_record
    now_ms = int(time.time() * 1000)
    batches = [orjson.dumps(b) for b in raw_batches(tenants, wanted * 10, now_ms)][:wanted]
    values = [
        b"[" + b",".join(batches[i : i + posts_per_record]) + b"]"
        for i in range(0, len(batches), posts_per_record)
    ]
    events = sum(len(batch["events"]) for value in values for batch in orjson.loads(value))
    return values, events


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024, linger_ms=20
    )
    await producer.start()
    try:
        deliveries = [await producer.send(topic, value) for value in values]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


def outcomes(worker: Worker) -> float:
    """Events the worker has validated or dead-lettered so far."""
    with urllib.request.urlopen(f"{worker.base_url}/metrics", timeout=5) as response:
        counted = parse_metrics(response.read().decode())
    return counted["processed"] + counted["dead"]


def drain(broker: Broker, work: Path, env: dict[str, str], values: list[bytes], events: int) -> str:
    overrides = worker_overrides(
        tenant_keys(40), (("TRACKFLOW_SINK_ENABLED", "false"), *env.items())
    )
    worker = Worker(broker=broker, workdir=work, overrides=overrides)
    worker.start(180).stop()  # creates the worker's topics, as a first start does
    asyncio.run(produce(broker.bootstrap, worker.env["TRACKFLOW_RAW_TOPIC"], values))
    started = time.monotonic()
    worker.start(180)
    assert worker.proc is not None
    peak_anon = 0.0
    try:
        while (counted := outcomes(worker)) < events and time.monotonic() - started < 600:
            peak_anon = max(peak_anon, status_mb(worker.proc.pid).get("RssAnon", 0.0))
            time.sleep(0.5)
        seconds = time.monotonic() - started
        hwm = status_mb(worker.proc.pid).get("VmHWM", 0.0)
    finally:
        worker.stop()
    done = "all validated" if counted == events else f"only {counted:,.0f} of {events:,} validated"
    return f"{seconds:.0f} s ({done}), VmHWM {hwm:.0f} MB, RssAnon peak {peak_anon:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--posts-per-record", type=int, default=20)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="worker variables K=V[,K=V]; repeat for each variant (none: the defaults)",
    )
    args = parser.parse_args()
    values, events = packed_records(args.records, args.posts_per_record)
    mean = sum(map(len, values)) // len(values)
    print(f"{len(values):,} raw records of {mean:,} bytes on average, {events:,} events")
    with tempfile.TemporaryDirectory(prefix="trackflow-backlog-") as tmp:
        work = Path(tmp)
        with contextlib.contextmanager(start_broker)(work) as broker:
            for variant in args.variant or [""]:
                env = dict(pair.split("=", 1) for pair in variant.split(",") if pair)
                result = drain(broker, work, env, values, events)
                print(f"{variant or 'defaults'}: {result}", flush=True)


if __name__ == "__main__":
    main()
