"""An ingest-only worker (TRACKFLOW_SINK_ENABLED=false) next to the worker that owns the store."""

from __future__ import annotations

import time
import uuid

import httpx

from harness.stack import Worker
from tests.support import events as ev


def test_ingest_only_worker_feeds_the_store_of_the_worker_with_the_sink(
    worker_factory: type[Worker],
) -> None:
    topics = uuid.uuid4().hex[:8]
    primary = worker_factory(_topics=topics).start()  # type: ignore[call-arg]
    # Same store URL as the primary: were the ingest-only worker to open it, two processes
    # would hold one chDB store.
    ingest = worker_factory(  # type: ignore[call-arg]
        _topics=topics,
        TRACKFLOW_SINK_ENABLED="false",
        TRACKFLOW_CLICKHOUSE_URL=primary.env["TRACKFLOW_CLICKHOUSE_URL"],
    ).start()

    ready = httpx.get(f"{ingest.base_url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "kafka": True,
        "clickhouse": "not_used_by_this_worker",
        "stalled": [],
    }
    refused = httpx.get(
        f"{ingest.base_url}/v1/stats/traffic",
        headers={"Authorization": f"Bearer {ingest.read_secret}"},
        timeout=10,
    )
    assert refused.status_code == 503
    assert refused.json()["error"] == "store_not_on_this_worker"

    # Post through both edges until the ingest-only worker's validate stage has taken a share of
    # the raw partitions (the consumer group rebalances once it joins).
    sent: dict[str, int] = {}
    deadline = time.monotonic() + 90
    while ingest.metric("trackflow_events_processed_total") == 0 or len(sent) < 20:
        assert time.monotonic() < deadline, "the ingest-only worker never validated an event"
        for edge in (primary, ingest):
            sid = f"scale-{uuid.uuid4().hex[:12]}"
            batch = [ev.page_view(primary.api_key, sid), ev.click(primary.api_key, sid)]
            response = edge.post({"events": batch})
            assert response.status_code == 202, response.text
            sent[sid] = len(batch)
        time.sleep(0.2)

    assert ingest.metric("trackflow_rows_inserted_total") == 0  # it has no sink
    for sid, count in sent.items():
        rows = primary.wait_for_session(sid, count, timeout=60)
        assert len(rows) == count  # each event exactly once
        assert len({row["event_id"] for row in rows}) == count
    assert ingest.stop() == 0
    assert primary.stop() == 0


def test_a_worker_names_topics_whose_partitions_differ_from_its_settings(
    worker_factory: type[Worker],
) -> None:
    topics = uuid.uuid4().hex[:8]
    first = worker_factory(_topics=topics).start()  # type: ignore[call-arg]
    assert first.stop() == 0
    second = worker_factory(  # type: ignore[call-arg]
        _topics=topics, TRACKFLOW_RAW_PARTITIONS="8"
    ).start()
    log = second.log_path.read_text()
    assert (
        f"topic raw-{topics} has 4 partitions, TRACKFLOW_RAW_PARTITIONS=8: it keeps 4 (at most 4 "
        f"workers share its stage); raise it with kafka-topics.sh --alter --topic raw-{topics} "
        "--partitions 8"
    ) in log
    assert f"processed-{topics} has" not in log  # its count matches: no warning
    sid = f"s-{uuid.uuid4().hex[:10]}"
    assert second.post({"events": ev.seed_examples(second.api_key, sid)}).status_code == 202
    assert len(second.wait_for_session(sid, 5)) == 5
