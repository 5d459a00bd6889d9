from pathlib import Path

from bench.thread_cpu import log_bytes_per_event, topic_log_bytes


def _segment(data: Path, partition_dir: str, name: str, size: int) -> None:
    folder = data / partition_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x" * size)


def test_log_bytes_are_summed_per_topic_over_partitions_and_segments(tmp_path: Path) -> None:
    _segment(tmp_path, "raw-ab12-0", "00000000000000000000.log", 300)
    _segment(tmp_path, "raw-ab12-1", "00000000000000000000.log", 200)
    _segment(tmp_path, "raw-ab12-1", "00000000000000004096.log", 50)
    _segment(tmp_path, "processed-ab12-3", "00000000000000000000.log", 1000)
    _segment(tmp_path, "processed-ab12-3", "00000000000000000000.index", 10_485_760)
    (tmp_path / "meta.properties").write_text("version=1")

    assert topic_log_bytes(tmp_path) == {"raw-ab12": 550, "processed-ab12": 1000}


def test_bytes_per_event_counts_only_what_the_window_added() -> None:
    before = {"raw-x": 1_000, "processed-x": 4_000, "__consumer_offsets": 10}
    after = {"raw-x": 3_000, "processed-x": 12_000, "__consumer_offsets": 900}
    names = {"raw-x": "raw", "processed-x": "processed", "dead-letter-x": "dead letters"}

    assert log_bytes_per_event(before, after, names, events=100) == {
        "raw": 20.0,
        "processed": 80.0,
    }


def test_a_missing_data_folder_has_no_topics(tmp_path: Path) -> None:
    assert topic_log_bytes(tmp_path / "absent") == {}
