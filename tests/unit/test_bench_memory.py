"""How the benchmarks report the worker's memory."""

from __future__ import annotations

from bench.report import ingest_memory_target
from bench.thread_cpu import resident_mb, summarize_resident


def test_resident_memory_is_split_by_kind_and_summarized() -> None:
    status = "Name:\tfaust\nVmHWM:\t 900000 kB\nVmRSS:\t  512000 kB\nRssAnon:\t 204800 kB\n"
    status += "RssFile:\t  307200 kB\nRssShmem:\t 0 kB\n"
    sample = resident_mb(status)
    assert sample == {"total": 500.0, "anonymous": 200.0, "file-backed": 300.0}
    later = {"total": 600.0, "anonymous": 300.0, "file-backed": 300.0}
    summary = summarize_resident([sample, later])
    assert summary["anonymous"] == {"mean": 250, "max": 300}
    assert summary["total"] == {"mean": 550, "max": 600}


def test_the_ingest_only_memory_target_needs_an_ingest_only_worker() -> None:
    assert ingest_memory_target({"ingest_peak_rss": []})[2] is False
    assert ingest_memory_target({"ingest_peak_rss": [125 * 2**20]}) == (
        "ingest-only worker peak RSS ≤ 130 MB",
        "125 MB",
        True,
    )
    assert ingest_memory_target({"ingest_peak_rss": [125 * 2**20, 131 * 2**20]})[2] is False


def test_memory_transients_are_the_highest_samples_set_against_inserts_and_merges() -> None:
    from bench.store_memory import anon_transients

    anon = [(100.0 + i * 0.5, 200.0) for i in range(20)]
    anon[6] = (103.0, 350.0)  # a rise of 150 MB while an insert runs
    anon[16] = (108.0, 260.0)  # a rise of 60 MB between inserts, with a merge under way
    inserts = [(102.9, 103.1), (105.0, 105.2)]
    merges = [(103.2, {"running": 0}), (108.1, {"running": 1, "memory_mb": 70})]
    found = anon_transients(anon, inserts, merges, count=2)
    assert [(t["at_s"], t["anon_mb"], t["rise_mb"]) for t in found] == [
        (3.0, 350, 150),
        (8.0, 260, 60),
    ]
    assert [t["insert_running"] for t in found] == [True, False]
    assert found[1]["merges"] == {"running": 1, "memory_mb": 70}
    assert anon_transients([], inserts, merges) == []
