"""How bench.read_during_ingest picks its tenant and summarizes query times."""

from __future__ import annotations

import orjson

from bench.read_during_ingest import busiest_ingested_tenant, summary


def test_the_tenant_queried_is_the_one_with_most_ingested_rows() -> None:
    rows = [orjson.dumps({"tenant_id": tenant}) for tenant in ("a", "b", "b", "c", "b", "a")]
    assert busiest_ingested_tenant(rows) == "b"


def test_query_times_are_summarized_as_median_p95_and_max() -> None:
    times = [float(ms) for ms in range(1, 101)]
    assert summary(times) == {"n": 100, "p50": 50.5, "p95": 95.0, "max": 100.0}
    assert summary([]) == {}
