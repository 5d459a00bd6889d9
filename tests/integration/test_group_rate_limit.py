"""A tenant's rate limit holds across a group of workers, not once per worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import aiohttp
import orjson

from harness.stack import Worker
from tests.support import events as ev

LIMIT = 300  # events per second, for the whole group
BATCH = 10
OFFERED = 3 * LIMIT  # events per second, spread evenly over the three edges
WARMUP_S = 1.0  # the buckets start full: the first second's burst is left out of the rate
MEASURE_S = 10.0


async def offer(edges: Sequence[str], tenant: str) -> list[tuple[float, int]]:
    """POST 10-event batches round-robin to the edges at OFFERED events/s; (sent at, status)."""
    answers: list[tuple[float, int]] = []
    interval = BATCH / OFFERED
    total = int((WARMUP_S + MEASURE_S) / interval)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def post(url: str, sent_at: float) -> None:
            sid = f"limit-{uuid.uuid4().hex[:10]}"
            body = orjson.dumps({"events": [ev.click(tenant, sid) for _ in range(BATCH)]})
            headers = {"Content-Type": "application/json"}
            async with session.post(f"{url}/v1/batch", data=body, headers=headers) as response:
                await response.read()
                answers.append((sent_at, response.status))

        started = time.monotonic()
        tasks = []
        for i in range(total):
            delay = started + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at = time.monotonic() - started
            tasks.append(asyncio.create_task(post(edges[i % len(edges)], sent_at)))
        await asyncio.gather(*tasks)
    return answers


def test_three_workers_let_a_tenant_through_at_its_limit_in_total(
    worker_factory: type[Worker],
) -> None:
    group = {
        "_topics": uuid.uuid4().hex[:8],
        "TRACKFLOW_RATE_LIMIT_PER_TENANT": f"{LIMIT}/second",
        "TRACKFLOW_RATE_LIMIT_PER_IP": "",
    }
    primary = worker_factory(**group).start()  # type: ignore[call-arg]
    store = primary.env["TRACKFLOW_CLICKHOUSE_URL"]
    ingest = [
        worker_factory(  # type: ignore[call-arg]
            **group, TRACKFLOW_SINK_ENABLED="false", TRACKFLOW_CLICKHOUSE_URL=store
        ).start()
        for _ in range(2)
    ]
    workers = [primary, *ingest]
    # Every worker learns the group's size from its consumer group's assignment.
    deadline = time.monotonic() + 90
    while [w.metric("trackflow_rate_limit_group_size") for w in workers] != [3.0] * 3:
        assert time.monotonic() < deadline, [
            w.metric("trackflow_rate_limit_group_size") for w in workers
        ]
        time.sleep(0.5)

    answers = asyncio.run(offer([w.base_url for w in workers], primary.api_key))

    statuses = {status for _, status in answers}
    assert statuses <= {202, 429}, statuses
    measured = [t for t, status in answers if status == 202 and t >= WARMUP_S]
    rate = len(measured) * BATCH / MEASURE_S
    print(
        f"offered {OFFERED} ev/s over 3 edges; accepted {rate:.0f} ev/s "
        f"(limit {LIMIT}); all answers: {len(answers)}"
    )
    # One worker alone would let LIMIT through; three counting alone, 3 * LIMIT.
    assert 0.8 * LIMIT <= rate <= 1.2 * LIMIT
    # Every edge took its share: the limit is spread, not held by one worker.
    for worker in workers:
        assert worker.metric("trackflow_events_accepted_total") > 0
    for worker in reversed(workers):
        assert worker.stop() == 0
